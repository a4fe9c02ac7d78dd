"""The ServingPusher's contract: its input and output keys, its execution properties and
what it records on the PushedModel artifact (beside `push.json`). No TensorFlow or TFX
import: the run summary and the report read these names without loading either.
"""

MODEL_KEY = "model"
COMPRESSION_BLESSING_KEY = "compression_blessing"
MODEL_BLESSING_KEY = "model_blessing"
COMPRESSION_EVALUATION_KEY = "compression_evaluation"
MODEL_EVALUATION_KEY = "model_evaluation"
EXAMPLES_KEY = "examples"
PUSHED_MODEL_KEY = "pushed_model"
SERVING_MODEL_DIR_KEY = "serving_model_dir"
TFLITE_MODEL_DIR_KEY = "tflite_model_dir"
WARMUP_REQUESTS_KEY = "warmup_requests"
MODEL_NAME_KEY = "model_name"
MIN_TFLITE_AGREEMENT_KEY = "min_tflite_agreement"
# Custom properties of the PushedModel artifact: whether a version was published, where
# and which, or why not; and whether nothing was refused because the model already is the
# last pushed one.
PUSHED_PROPERTY = "pushed"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
PUSHED_VERSION_PROPERTY = "pushed_version"
NOT_PUSHED_REASON_PROPERTY = "not_pushed_reason"
ALREADY_PUSHED_PROPERTY = "already_pushed"

PUSH_SUMMARY_FILE = "push.json"
