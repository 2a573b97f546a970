"""The ML hub: JupyterHub policy for a multi-user TensorFlow platform."""
