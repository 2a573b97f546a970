#!/bin/sh
# Same entrypoint as the official tensorflow/serving image: fixed ports, the single-model
# flags from MODEL_NAME / MODEL_BASE_PATH, then the container's arguments (which win:
# --model_config_file makes the single-model flags irrelevant, and later flags override
# earlier ones). tensorflow_model_server here is the STAND-IN (see server.py).
exec tensorflow_model_server --port=8500 --rest_api_port=8501 \
  --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" \
  "$@"
