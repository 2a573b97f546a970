"""The ML hub's model service: TensorFlow Serving behind the hub's login.

TF Serving has no authentication and cannot live under a URL prefix, so it
runs on a network only this service reaches; this service is the hub service
``models`` at /services/models/: it publishes, labels and deletes model
versions on the shared models volume, writes TF Serving's models.config, and
forwards predictions for allowed users.
"""
