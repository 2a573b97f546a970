"""Example: develop -> deploy -> validate, the loop the old guide described.

1. retrain: train a small Keras model on fresh data (here: synthetic);
2. publish: publish it as the next version of `example-classifier` through the
   hub's models service, and point the `candidate` label at it;
3. validate: ask TF Serving (through the hub's models service) for predictions
   of that version and check they equal the ones computed at training time.

Installed by the platform into the team's DAGs folder; edit or delete it there
(your copy is never overwritten). Runs with Airflow's own hub token.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

MODEL = "example-classifier"
PROBE = [[0.9, 0.1, 0.5, 0.7], [0.1, 0.2, 0.3, 0.4], [0.8, 0.9, 0.7, 0.6]]


@dag(
    dag_id="mlhub_retrain_publish_validate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlhub", "example"],
    doc_md=__doc__,
)
def retrain_publish_validate():
    @task
    def retrain_and_publish() -> dict:
        import numpy as np
        import tensorflow as tf
        from mlhub_models import publish

        rng = np.random.default_rng()
        x = rng.random((512, 4), dtype="float32")
        y = (x.sum(axis=1) > 2).astype("float32")
        model = tf.keras.Sequential([
            tf.keras.Input((4,)),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ])
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, verbose=0)
        expected = model.predict(np.array(PROBE, dtype="float32"), verbose=0).ravel().tolist()
        result = publish(model, MODEL, label="candidate")
        return {
            "version": result["version"],
            "expected": expected,
            "accuracy": float(history.history["accuracy"][-1]),
        }

    @task
    def validate(published: dict) -> dict:
        import time

        from mlhub_models import model as get_model
        from mlhub_models import predict

        version = published["version"]
        deadline = time.monotonic() + 120
        while True:  # TF Serving picks up a new version within seconds
            states = {v["version"]: v["state"] for v in get_model(MODEL)["versions"]}
            if states.get(version) == "AVAILABLE":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{MODEL} version {version} not served after 120 s: {states}")
            time.sleep(1)
        got = [p[0] for p in predict(MODEL, PROBE, version=version)]
        worst = max(abs(a - b) for a, b in zip(got, published["expected"]))
        if worst > 1e-4:
            raise ValueError(f"served predictions differ from training-time ones by {worst}")
        return {"version": version, "max_abs_diff": worst}

    validate(retrain_and_publish())


retrain_publish_validate()
