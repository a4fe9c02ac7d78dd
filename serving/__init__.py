"""Serving with TF Serving: version layout, configs, warm-up, manifests and a client."""
