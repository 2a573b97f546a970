"""The Airflow images on the real engine: images/airflow on the local STAND-IN bases.

No registry is reachable here, so the test builds
  * images/local-base/postgres  (STAND-IN for postgres:16: Debian 12's PostgreSQL 15),
  * images/local-base/airflow   (STAND-IN for apache/airflow:3.3.2-python3.12),
  * images/airflow              (our image) FROM that stand-in,
and runs Airflow 3 the way our compose file does: postgres, `db migrate`, then
api-server, scheduler, dag-processor and triggerer (LocalExecutor, FAB auth manager),
served under the sub-path /services/airflow as JupyterHub's proxy forwards it. It checks
the health endpoint and the UI under that prefix, that a DAG in the mounted dags folder
is parsed, that a run of it succeeds (its task imports TensorFlow) through the execution
API, and that the state survives a new postgres container on the same volume.
Every container, network, volume and image it makes is named mlhubaf-test-<run id>
(images: mlhubaf-test/<name>:<run id>) and removed at the end (MLHUB_TEST_KEEP=1 keeps them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import record
from tests.support.stack import ROOT, docker, engine_problem, free_port

pytestmark = pytest.mark.docker

RUN = f"mlhubaf-test-{uuid.uuid4().hex[:8]}"
TAG = RUN.removeprefix("mlhubaf-test-")
IMAGES = {
    "postgres": f"mlhubaf-test/postgres:{TAG}",
    "airflow-base": f"mlhubaf-test/airflow-base:{TAG}",
    "airflow": f"mlhubaf-test/airflow:{TAG}",
}
LOCAL_BASES = ("mlhub-local/debian:bookworm", "mlhub-local/tensorflow-notebook:cpu")
PREFIX = "/services/airflow"
AIRFLOW_VERSION = "3.3.2"
FAB_VERSION = "3.10.2"
TF_VERSION = "2.21.0"
DAG_ID = "mlhubaf_probe"
PG_PASSWORD = secrets.token_urlsafe(16)

# A DAG like our example one: its first task imports TensorFlow in the task runner.
DAG_FILE = f'''
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False, tags=["mlhubaf-test"])
def probe():
    @task
    def tf_version() -> str:
        import tensorflow as tf
        return tf.__version__

    @task
    def check(version: str) -> str:
        assert version.startswith("2."), version
        return "ok " + version

    check(tf_version())


probe()
'''


def _name(what: str) -> str:
    """A fresh container name: `docker run --rm` may free a name only after it returns."""
    return f"{RUN}-{what}-{uuid.uuid4().hex[:6]}"


def fernet_key() -> str:
    import base64
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Airflow:
    def __init__(self, port: int, dags: Path):
        self.port, self.dags = port, dags
        self.url = f"http://127.0.0.1:{port}{PREFIX}"
        self.env = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                f"postgresql+psycopg2://airflow:{PG_PASSWORD}@postgres:5432/airflow",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
            # The public URL (what the browser sees through the hub's proxy) ...
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}{PREFIX}",
            # ... and the one the task runners (forked by the scheduler) call: inside the
            # network, same sub-path. Its default, {base_url}/execution/, is not reachable
            # from the scheduler's container.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
                f"http://airflow-api-server:8080{PREFIX}/execution/",
            # Shared by every component: JWTs for the task runners and the UI/API, the
            # FAB session cookie, connection encryption.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key(),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        }
        self.containers: dict[str, str] = {}

    def run_args(self, name: str) -> list[str]:
        args = ["--name", f"{RUN}-{name}", "--network", RUN,
                "-v", f"{self.dags}:/opt/airflow/dags:ro",
                "-v", f"{RUN}-logs:/opt/airflow/logs"]
        for k, v in self.env.items():
            args += ["-e", f"{k}={v}"]
        return args

    def start(self, component: str, *extra: str) -> None:
        docker("run", "-d", *self.run_args(component), *extra, IMAGES["airflow"], component)
        self.containers[component] = f"{RUN}-{component}"

    def logs(self) -> str:
        out = []
        for name in [f"{RUN}-postgres", *self.containers.values()]:
            r = docker("logs", "--tail", "60", name, check=False)
            out.append(f"----- {name}\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        return "\n".join(out)

    def health(self) -> dict | None:
        try:
            r = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return r.json() if r.status_code == 200 else None

    def exec(self, component: str, *cmd: str, timeout: float = 120):
        return docker("exec", self.containers[component], *cmd, check=False, timeout=timeout)

    def token(self) -> str:
        r = requests.post(f"{self.url}/auth/token", json={"username": "mlhubaf", "password": "mlhubaf-pw"},
                          timeout=30)
        assert r.status_code in (200, 201), r.text
        return r.json()["access_token"]

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kw)


def _build(name: str, dockerfile: str, *args: str) -> float:
    t0 = time.monotonic()
    r = docker("build", "--force-rm", "-t", IMAGES[name], "-f", dockerfile, *args, str(ROOT),
               check=False, timeout=1800)
    assert r.returncode == 0, f"building {dockerfile} failed:\n{r.stdout[-5000:]}\n{r.stderr[-3000:]}"
    return time.monotonic() - t0


def _size(image: str) -> str:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())
    return f"{size / 1e9:.2f} GB"


def _start_postgres() -> None:
    docker("run", "-d", "--name", f"{RUN}-postgres", "--network", RUN, "--network-alias", "postgres",
           "-e", "POSTGRES_USER=airflow", "-e", f"POSTGRES_PASSWORD={PG_PASSWORD}",
           "-e", "POSTGRES_DB=airflow", "-v", f"{RUN}-pgdata:/var/lib/postgresql/data",
           IMAGES["postgres"])


def _wait_pg_ready(timeout: float = 60) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = docker("exec", f"{RUN}-postgres", "pg_isready", "-h", "127.0.0.1", "-U", "airflow",
                   "-d", "airflow", check=False)
        if r.returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.5)
    logs = docker("logs", f"{RUN}-postgres", check=False)
    raise AssertionError(f"postgres not ready in {timeout} s:\n{logs.stdout}{logs.stderr}")


def _cleanup() -> None:
    r = docker("ps", "-aq", "--filter", f"name=^/{RUN}-", check=False)
    for cid in r.stdout.split():
        docker("rm", "-f", "-v", cid, check=False)
    for vol in (f"{RUN}-pgdata", f"{RUN}-logs"):
        docker("volume", "rm", "-f", vol, check=False)
    docker("network", "rm", RUN, check=False)
    for image in reversed(list(IMAGES.values())):
        docker("rmi", "-f", image, check=False)


@pytest.fixture(scope="module")
def airflow():
    problem = engine_problem()
    if problem:
        pytest.fail(f"this test needs a Docker engine: {problem}", pytrace=False)
    missing = [b for b in LOCAL_BASES if docker("image", "inspect", b, check=False).returncode != 0]
    if missing:
        pytest.fail(f"local base images missing: {missing}; run images/local-base/build.sh",
                    pytrace=False)
    dags = Path(tempfile.mkdtemp(prefix=f"{RUN}-dags-"))
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    os.chmod(dags, 0o755)
    os.chmod(dags / f"{DAG_ID}.py", 0o644)
    try:
        t = _build("postgres", "images/local-base/postgres/Dockerfile")
        record(f"airflow: postgres stand-in image build: {t:.1f} s ({_size(IMAGES['postgres'])})")
        t = _build("airflow-base", "images/local-base/airflow/Dockerfile")
        record(f"airflow: airflow stand-in base image build: {t:.1f} s ({_size(IMAGES['airflow-base'])})")
        t = _build("airflow", "images/airflow/Dockerfile", "--build-arg",
                   f"BASE_IMAGE={IMAGES['airflow-base']}")
        record(f"airflow: images/airflow build on the stand-in: {t:.1f} s ({_size(IMAGES['airflow'])})")

        docker("network", "create", RUN)
        t0 = time.monotonic()
        _start_postgres()
        record(f"airflow: postgres stand-in initdb + ready on an empty volume: {_wait_pg_ready():.1f} s")

        af = Airflow(free_port(), dags)
        t1 = time.monotonic()
        r = docker("run", "--rm", *af.run_args("init"), IMAGES["airflow"], "db", "migrate",
                   check=False, timeout=600)
        assert r.returncode == 0, f"db migrate failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        record(f"airflow: `db migrate` (entrypoint DB check + migrations + FAB tables): "
               f"{time.monotonic() - t1:.1f} s")

        t1 = time.monotonic()
        af.start("api-server", "--network-alias", "airflow-api-server",
                 "-p", f"127.0.0.1:{af.port}:8080")
        for component in ("scheduler", "dag-processor", "triggerer"):
            af.start(component)

        def healthy() -> bool:
            h = af.health()
            return bool(h) and all(
                h.get(k, {}).get("status") == "healthy"
                for k in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

        while not healthy():
            if time.monotonic() - t1 > 300:
                raise AssertionError(f"Airflow not healthy in 300 s: {af.health()}\n{af.logs()}")
            time.sleep(1)
        record(f"airflow: 4 components started to all healthy at {PREFIX}/api/v2/monitor/health: "
               f"{time.monotonic() - t1:.1f} s (postgres start to healthy: {time.monotonic() - t0:.1f} s)")

        r = af.exec("api-server", "airflow", "users", "create", "--username", "mlhubaf",
                    "--password", "mlhubaf-pw", "--role", "Admin", "--firstname", "T",
                    "--lastname", "E", "--email", "mlhubaf@example.com")
        assert r.returncode == 0, r.stdout + r.stderr
        yield af
    except BaseException:
        if "af" in locals():
            print(f"\n{af.logs()}")
        raise
    finally:
        if os.environ.get("MLHUB_TEST_KEEP") != "1":
            _cleanup()
            shutil.rmtree(dags, ignore_errors=True)


def _in_image(image: str, script: str, user: str | None = None) -> str:
    args = ["run", "--rm", "--name", _name("probe"), "-e", "CONNECTION_CHECK_MAX_COUNT=0"]
    if user:
        args += ["--user", user]
    r = docker(*args, image, "bash", "-c", script, check=False, timeout=300)
    assert r.returncode == 0, f"{script}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_airflow_standin_keeps_the_official_contract(airflow):
    out = _in_image(IMAGES["airflow-base"], r"""
        set -e
        echo "id=$(id -u):$(id -g) home=$AIRFLOW_HOME venv=$VIRTUAL_ENV pwd=$(pwd)"
        echo "airflow=$(command -v airflow) python=$(python -c 'import sys; print(sys.version_info[:2])')"
        echo "version=$(airflow version 2>/dev/null | tail -1)"
        for d in dags logs plugins; do touch "$AIRFLOW_HOME/$d/.w" && echo "writable=$d"; done
        stat -c 'owner=%u:%g %n' "$AIRFLOW_HOME/dags" "$VIRTUAL_ENV"
    """)
    assert "id=50000:0 home=/opt/airflow venv=/home/airflow/.local pwd=/opt/airflow" in out
    assert "airflow=/home/airflow/.local/bin/airflow" in out and "python=(3, 11)" in out
    assert f"version={AIRFLOW_VERSION}" in out
    assert all(f"writable={d}" in out for d in ("dags", "logs", "plugins"))
    assert "owner=50000:0 /opt/airflow/dags" in out and "owner=50000:0 /home/airflow/.local" in out
    config = json.loads(docker("image", "inspect", IMAGES["airflow-base"]).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["/usr/bin/dumb-init", "--", "/entrypoint"]
    assert config["User"] == "50000" and "AIRFLOW__CORE__LOAD_EXAMPLES=false" in config["Env"]
    # The official entrypoint's forms: a bare sub-command, "airflow <cmd>", bash, python.
    for cmd in (["version"], ["airflow", "version"]):
        r = docker("run", "--rm", "--name", _name("probe"), IMAGES["airflow"], *cmd, check=False)
        assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == AIRFLOW_VERSION, r
    r = docker("run", "--rm", "--name", _name("probe"), "-e", "CONNECTION_CHECK_MAX_COUNT=0",
               IMAGES["airflow"], "python", "-c", "print('py-ok')", check=False)
    assert r.stdout.strip() == "py-ok", r


def test_our_image_has_fab_postgres_and_tensorflow(airflow):
    out = _in_image(IMAGES["airflow"], r"""
        set -e
        pip check
        python - <<'EOF'
import importlib.metadata as md, tensorflow as tf
import airflow.providers.fab.auth_manager.fab_auth_manager, airflow.providers.postgres.hooks.postgres
for d in ("apache-airflow", "apache-airflow-providers-fab", "apache-airflow-providers-postgres",
          "tensorflow-cpu", "requests"):
    print(f"{d}=={md.version(d)}")
print("tf-from=" + tf.__file__)
EOF
    """)
    assert "No broken requirements found." in out
    assert f"apache-airflow=={AIRFLOW_VERSION}" in out
    assert f"apache-airflow-providers-fab=={FAB_VERSION}" in out
    assert f"tensorflow-cpu=={TF_VERSION}" in out
    # pip left the stand-in base's TensorFlow where it was: nothing reinstalled.
    assert "tf-from=/opt/conda/" in out


def _psql(host: str, db: str, password: str, sql: str, user: str = "airflow"):
    return docker("run", "--rm", "--name", _name("psql"), "--network", RUN,
                  "-e", f"PGPASSWORD={password}", IMAGES["postgres"],
                  "psql", "-h", host, "-U", user, "-d", db, "-tAc", sql, check=False, timeout=60)


def test_postgres_standin(airflow):
    pg = f"{RUN}-postgres"
    status = docker("exec", pg, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == "999"  # the server runs as postgres, not root
    assert docker("exec", pg, "pg_isready", "-U", "airflow").returncode == 0
    # Over the network: scram password auth; a wrong password is refused.
    ok = _psql("postgres", "airflow", PG_PASSWORD, "SHOW password_encryption")
    assert ok.returncode == 0 and ok.stdout.strip() == "scram-sha-256", ok
    bad = _psql("postgres", "airflow", "wrong", "SELECT 1")
    assert bad.returncode != 0 and "password authentication failed" in bad.stderr, bad
    # No password at all: refused to initialise, as the official image.
    r = docker("run", "--rm", "--name", _name("nopw"), IMAGES["postgres"], check=False, timeout=60)
    assert r.returncode != 0 and "POSTGRES_PASSWORD" in r.stderr


def test_postgres_password_file(airflow, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    os.chmod(tmp_path, 0o755)
    # As compose's setup service leaves it: readable by Airflow's uid only, not by the
    # postgres user; the entrypoint reads it as root before dropping privileges.
    os.chmod(secret, 0o600)
    if os.geteuid() == 0:
        os.chown(secret, 50000, 0)
    name = f"{RUN}-pgfile"
    docker("run", "-d", "--name", name, "--network", RUN, "-v", f"{secret}:/run/secrets/pw:ro",
           "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/pw", "-e", "POSTGRES_DB=other", IMAGES["postgres"])
    try:
        deadline = time.monotonic() + 60
        while True:
            r = _psql(name, "other", "from-a-file", "SELECT current_user", user="postgres")
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert r.returncode == 0 and r.stdout.strip() == "postgres", r
    finally:
        docker("rm", "-f", "-v", name, check=False)


def test_health_under_the_sub_path(airflow):
    h = airflow.health()
    assert h is not None
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert h[component]["status"] == "healthy", h
    r = requests.get(f"{airflow.url}/api/v2/version", timeout=10)
    assert r.status_code == 200 and r.json()["version"] == AIRFLOW_VERSION
    # the execution API (task runners) is mounted under the same prefix
    r = requests.get(f"{airflow.url}/execution/health", timeout=10)
    assert r.status_code == 200, r.text


def test_ui_and_login_under_the_sub_path(airflow):
    r = requests.get(f"{airflow.url}/", timeout=10)
    assert r.status_code == 200 and f'<base href="{PREFIX}/" />' in r.text
    asset = next(part.split('"')[0] for part in r.text.split('src="./')[1:] if part.startswith("static/"))
    assert requests.get(f"{airflow.url}/{asset}", timeout=10).status_code == 200
    # The FAB auth manager's login form lives under the prefix too.
    r = requests.get(f"{airflow.url}/auth/login/", timeout=10)
    assert r.status_code == 200
    assert 'name="username"' in r.text and 'name="password"' in r.text and "csrf_token" in r.text
    assert f"{PREFIX}/auth/static/" in r.text
    # The public API wants a login.
    assert requests.get(f"{airflow.url}/api/v2/dags", timeout=10).status_code == 401


def test_dag_in_the_mounted_folder_is_parsed(airflow):
    deadline = time.monotonic() + 120
    while True:
        r = airflow.exec("scheduler", "airflow", "dags", "list", "-o", "json")
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("[")), "[]")
        dags = {d["dag_id"]: d for d in json.loads(line)}
        if DAG_ID in dags or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert DAG_ID in dags, r.stdout + r.stderr
    assert dags[DAG_ID]["fileloc"] == f"/opt/airflow/dags/{DAG_ID}.py"
    r = airflow.api("GET", f"/dags/{DAG_ID}")
    assert r.status_code == 200 and r.json()["dag_id"] == DAG_ID


def test_dag_run_succeeds_with_local_executor(airflow):
    assert airflow.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    t0 = time.monotonic()
    r = airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert r.status_code == 200, r.text
    run_id = urllib.parse.quote(r.json()["dag_run_id"], safe="")
    state = None
    while time.monotonic() - t0 < 180:
        state = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(2)
    tis = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()
    assert state == "success", (state, tis, airflow.logs())
    record(f"airflow: trigger to success of a 2-task DAG (imports TensorFlow): {time.monotonic() - t0:.1f} s")
    xcom = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/check/xcomEntries/return_value")
    assert xcom.json()["value"] == f"ok {TF_VERSION}", xcom.text
    # The task's log, written by the scheduler's task runner on the shared logs volume,
    # is read back by the api-server.
    log = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/tf_version/logs/1")
    assert log.status_code == 200 and "Done. Returned value was" in log.text, log.text[:2000]


def test_state_survives_a_new_postgres_container(airflow):
    docker("rm", "-f", f"{RUN}-postgres")
    _start_postgres()
    _wait_pg_ready()
    logs = docker("logs", f"{RUN}-postgres").stdout
    assert "already initialized; skipping initdb" in logs
    deadline = time.monotonic() + 60
    while True:
        try:
            r = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns")
            if r.status_code == 200:
                break
        except (requests.RequestException, AssertionError):
            pass
        assert time.monotonic() < deadline, "the api-server did not reconnect to the new postgres"
        time.sleep(2)
    runs = r.json()["dag_runs"]
    assert any(run["state"] == "success" for run in runs), runs
