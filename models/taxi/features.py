"""Chicago taxi constants: the label is "big tipper", a tip above 20% of the fare."""

# The raw columns the label comes from (the config's model.label.column is TIPS_COLUMN).
FARE_COLUMN = "fare"
TIPS_COLUMN = "tips"
# A trip is a big tipper when tips > BIG_TIP_FRACTION * fare.
BIG_TIP_FRACTION = 0.2
