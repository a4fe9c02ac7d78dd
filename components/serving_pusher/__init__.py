"""ServingPusher: publishes a blessed compressed model as a new TF Serving version."""

from components.serving_pusher.component import ServingPusher

__all__ = ["ServingPusher"]
