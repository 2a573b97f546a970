"""Apache Airflow 3 as a hub service, on the whole compose stack (``airflow_platform``).

Airflow's api-server is served by the hub's proxy at /services/airflow/ and signs
people in through JupyterHub (FAB auth manager, the hub as OAuth provider; see
images/airflow/webserver_config.py). The stack runs with MLHUB_AIRFLOW_GROUP=airflow-users
(only its members and hub admins get the hub scope access:services!service=airflow),
MLHUB_AIRFLOW_OP_GROUP=airflow-ops (-> Airflow Op) and default role User.

People: ``admin`` (native hub admin -> Airflow Admin), ``ada`` (airflow-users -> User),
``otto`` (airflow-users + airflow-ops -> Op), ``nora`` (no group: the hub refuses her).

In order:
  1. Airflow has no published port; anonymous visitors get nothing but the UI's static
     shell and are sent to the hub's login page; the health endpoint (through the hub's
     URL) reports scheduler, dag-processor and triggerer healthy.
  2. SSO: each person signs in to the hub, then opens Airflow: roles as above, nora
     refused by the hub's OAuth step (403, no Airflow token); roles are re-synced at
     each sign-in (ada added to, then removed from airflow-ops).
  3. A DAG written from ada's notebook (Jupyter contents API, shared DAGs folder) is
     parsed, and ada (User) unpauses and triggers it through Airflow's REST API: success.
  4. A broken DAG shows in Airflow's import errors; the good DAG still runs.
  5. The example DAG mlhub_retrain_publish_validate retrains, publishes a new version of
     example-classifier through the models service and validates its predictions.

Airflow's REST API is called through the hub's URL with the JWT that Airflow sets in the
``_token`` cookie at sign-in (``Authorization: Bearer``), as its own UI does.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import requests

from tests.conftest import record
from tests.support.hubapi import sign_up_and_approve

pytestmark = pytest.mark.docker

PREFIX = "/services/airflow"
GROUP = "airflow-users"  # AIRFLOW_STACK_ENV's MLHUB_AIRFLOW_GROUP
OP_GROUP = "airflow-ops"  # AIRFLOW_STACK_ENV's MLHUB_AIRFLOW_OP_GROUP
DEFAULT_ROLE = "User"  # AIRFLOW_STACK_ENV's MLHUB_AIRFLOW_DEFAULT_ROLE
# Shared with tests/browser/test_airflow_sso.py (one hub per test session: a name signs
# up once, so both files must give it the same password).
PASSWORDS = {
    "ada": "Lantern-Orchid-Pelican-71!",
    "otto": "Granite-Willow-Harbour-38!",
    "nora": "Saffron-Beacon-Meadow-52!",
}
MEMBERSHIP = {"ada": {GROUP}, "otto": {GROUP, OP_GROUP}, "nora": set()}
AIRFLOW_SERVICES = (
    "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-postgres",
)
DAGS_DIR = "airflow-dags"  # in the notebook's home (MLHUB_AIRFLOW_DAGS_PATH default)
HELLO = "hello_mlhub"
HELLO_RESULT = "hello from ada's notebook"
HELLO_DAG = f'''
"""Written from a notebook through the Jupyter contents API."""
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="{HELLO}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False, tags=["mlhub-tests"])
def {HELLO}():
    @task
    def hello() -> str:
        return "{HELLO_RESULT}"

    hello()


{HELLO}()
'''
BROKEN = "broken_mlhub.py"
BROKEN_DAG = '''
from airflow.sdk import dag

def oops(:   # a syntax error, as typed in a hurry
    pass
'''
EXAMPLE = "mlhub_retrain_publish_validate"
MODEL = "example-classifier"

# Deadlines (seconds)
HEALTH_S = 180
DAG_LISTED_S = 90  # dag-processor refresh interval 10 s
IMPORT_ERROR_S = 90
HELLO_RUN_S = 180
EXAMPLE_RUN_S = 300
SPAWN_S = 300


# --------------------------------------------------------------------- helpers


def ensure_people(p) -> None:
    """ada, otto, nora with passwords, and the groups exactly as MEMBERSHIP says.
    Idempotent: the browser tests call it too."""
    hub = p.hub
    for g in (GROUP, OP_GROUP):
        r = hub.api(p.admin_token, "POST", f"/groups/{g}")
        assert r.status_code in (201, 409), r.text
    for name, password in PASSWORDS.items():
        sign_up_and_approve(hub, p.admin_password, name, password)
    for g in (GROUP, OP_GROUP):
        members = [n for n, gs in MEMBERSHIP.items() if g in gs]
        others = [n for n, gs in MEMBERSHIP.items() if g not in gs]
        r = hub.api(p.admin_token, "POST", f"/groups/{g}/users", json={"users": members})
        assert r.status_code == 200, r.text
        r = hub.api(p.admin_token, "DELETE", f"/groups/{g}/users", json={"users": others})
        assert r.status_code == 200, r.text


def password_of(p, name: str) -> str:
    return p.admin_password if name == "admin" else PASSWORDS[name]


def sign_in_to_airflow(p, name: str) -> tuple[requests.Session, requests.Response, float]:
    """Sign in to the hub (login form), then open Airflow's login as a browser does.

    Returns the session, Airflow's final response and the seconds from the hub session
    to the end of the Airflow sign-in (OAuth round trip, Airflow's UI page loaded)."""
    s = p.hub.login_session(name, password_of(p, name))
    t0 = time.monotonic()
    r = s.get(p.hub.url(f"{PREFIX}/auth/login/"), timeout=60)
    return s, r, time.monotonic() - t0


def airflow_token(p, name: str) -> str:
    """A fresh SSO sign-in of ``name``; Airflow's JWT from the ``_token`` cookie."""
    s, r, _ = sign_in_to_airflow(p, name)
    token = s.cookies.get("_token")
    assert r.status_code == 200 and token, (name, r.status_code, r.url, r.text[:500])
    return token


def af(p, token: str, method: str, path: str, **kw) -> requests.Response:
    """Airflow's REST API (/api/v2) through the hub's proxy."""
    headers = kw.pop("headers", {})
    headers["Authorization"] = f"Bearer {token}"
    return requests.request(
        method, p.hub.url(f"{PREFIX}/api/v2{path}"), headers=headers, timeout=kw.pop("timeout", 30), **kw
    )


def airflow_cli(p, *args: str, service: str = "airflow-api-server") -> str:
    """``airflow <args>`` in a running Airflow container, as an admin would type it
    (``docker compose exec airflow-api-server airflow ...``): the image's ``airflow``
    shim loads the generated secrets, so this reaches the real metadata database."""
    r = p.stack.compose("exec", "-T", service, "airflow", *args, timeout=180)
    return r.stdout


def airflow_roles(p) -> dict[str, set[str]]:
    out = airflow_cli(p, "users", "list", "-o", "json")
    line = next((ln for ln in out.splitlines() if ln.lstrip().startswith("[")), None)
    assert line is not None, out[-2000:]
    return {u["username"]: set(u["roles"]) for u in json.loads(line)}


def effective_role(roles: set[str]) -> str:
    """FAB adds its registration role to every OAuth user besides the mapped one; the
    platform makes that 'Public' (no permissions), so exactly one role is left."""
    rest = roles - {"Public"}
    assert len(rest) == 1, roles
    return rest.pop()


def hub_write(p, user: str, path: str, text: str) -> None:
    """Write a text file in ``user``'s running server, as JupyterLab saves one."""
    r = p.hub.server_api(p.user(user), user, "PUT", f"api/contents/{path}",
                         json={"type": "file", "format": "text", "content": text})
    assert r.status_code in (200, 201), (r.status_code, r.text[:500])


def hub_delete(p, user: str, path: str) -> None:
    r = p.hub.server_api(p.user(user), user, "DELETE", f"api/contents/{path}")
    assert r.status_code in (204, 404), (r.status_code, r.text[:500])


def trigger(p, token: str, dag_id: str) -> str:
    r = af(p, token, "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert r.status_code == 200, (r.status_code, r.text[:1000])
    return r.json()["dag_run_id"]


def task_logs(p, token: str, dag_id: str, run_id: str) -> str:
    """Every task's log of a run (REST API; the container's log files if that fails)."""
    rid = urllib.parse.quote(run_id, safe="")
    parts = []
    try:
        tis = af(p, token, "GET", f"/dags/{dag_id}/dagRuns/{rid}/taskInstances").json()["task_instances"]
        for ti in tis:
            parts.append(f"=== {ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            r = af(p, token, "GET",
                   f"/dags/{dag_id}/dagRuns/{rid}/taskInstances/{ti['task_id']}/logs/{max(ti['try_number'], 1)}",
                   headers={"Accept": "application/json"})
            try:
                events = r.json()["content"]
                parts.append("\n".join(
                    f"{e.get('timestamp', '')} {e.get('level', '')} {e.get('event', '')}"
                    if isinstance(e, dict) else str(e) for e in events))
            except (ValueError, KeyError, TypeError):
                parts.append(f"{r.status_code} {r.text[-4000:]}")
    except Exception as e:  # the API itself may be what broke
        parts.append(f"(task logs through the REST API failed: {e!r})")
        r = p.stack.compose(
            "exec", "-T", "airflow-scheduler", "sh", "-c",
            f"find /opt/airflow/logs -path '*dag_id={dag_id}*' -name '*.log' "
            "-exec sh -c 'echo \"=== $1\"; tail -n 100 \"$1\"' _ {} \\;",
            check=False, timeout=120,
        )
        parts.append(r.stdout[-20000:] + r.stderr[-2000:])
    return "\n".join(parts)


def wait_run(p, token: str, dag_id: str, run_id: str, timeout: float) -> dict:
    """Wait for a terminal state; assert success (with the task logs if not)."""
    rid = urllib.parse.quote(run_id, safe="")
    deadline = time.monotonic() + timeout
    run: dict = {}
    while True:
        r = af(p, token, "GET", f"/dags/{dag_id}/dagRuns/{rid}")
        if r.status_code == 200:
            run = r.json()
            if run["state"] in ("success", "failed"):
                break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    assert run.get("state") == "success", (
        f"{dag_id} run {run_id}: {run.get('state')} (limit {timeout}s)\n"
        + task_logs(p, token, dag_id, run_id)
    )
    return run


def xcom(p, token: str, dag_id: str, run_id: str, task_id: str):
    rid = urllib.parse.quote(run_id, safe="")
    r = af(p, token, "GET", f"/dags/{dag_id}/dagRuns/{rid}/taskInstances/{task_id}/xcomEntries/return_value")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()["value"]


def import_errors(p, token: str) -> dict[str, str]:
    r = af(p, token, "GET", "/importErrors")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return {e["filename"]: e["stack_trace"] for e in r.json()["import_errors"]}


def ps_json(stack) -> list[dict]:
    out = stack.compose("ps", "-a", "--format", "json").stdout.strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def people(airflow_platform):
    ensure_people(airflow_platform)
    return airflow_platform


@pytest.fixture(scope="module")
def hello_dag(people):
    """ada's server runs; she writes hello_mlhub.py into the shared DAGs folder;
    Airflow (its REST API, as ada) lists the DAG. Returns ada's Airflow token."""
    p = people
    p.hub.start_server(p.user("ada"), "ada", timeout=SPAWN_S)
    token = airflow_token(p, "ada")
    t0 = time.monotonic()
    hub_write(p, "ada", f"{DAGS_DIR}/{HELLO}.py", HELLO_DAG)
    deadline = t0 + DAG_LISTED_S
    dags: list[dict] = []
    while True:
        r = af(p, token, "GET", "/dags", params={"dag_id_pattern": HELLO})
        if r.status_code == 200:
            dags = [d for d in r.json()["dags"] if d["dag_id"] == HELLO]
            if dags:
                break
        assert time.monotonic() < deadline, (
            f"{HELLO} not listed by Airflow {DAG_LISTED_S}s after ada wrote it: {r.status_code} {r.text[:500]}; "
            f"import errors: {import_errors(p, token)}"
        )
        time.sleep(1)
    record(f"airflow: DAG written in a notebook -> listed by Airflow's REST API: {time.monotonic() - t0:.1f} s")
    assert dags[0]["fileloc"] == f"/opt/airflow/dags/{HELLO}.py", dags[0]
    return token


# --------------------------------------------------------------------- 1. only via the hub


def test_airflow_is_only_reachable_through_the_hub(airflow_platform):
    p = airflow_platform
    stack = p.stack

    # No host port for any Airflow container (nor its database); the proxy is the way in.
    containers = {c["Service"]: c for c in ps_json(stack)}
    for service in AIRFLOW_SERVICES:
        assert service in containers, sorted(containers)
        published = [pub for pub in containers[service].get("Publishers") or [] if pub.get("PublishedPort")]
        assert published == [], (service, containers[service].get("Publishers"))
        info = stack.container(containers[service]["Name"])
        bindings = info["HostConfig"].get("PortBindings") or {}
        assert not any(bindings.values()), (service, bindings)
    proxy_ports = {pub.get("PublishedPort") for pub in containers["proxy"].get("Publishers") or []}
    assert stack.port in proxy_ports, containers["proxy"].get("Publishers")

    # Health through the hub's URL, within a deadline.
    deadline = time.monotonic() + HEALTH_S
    health, last = None, None
    while True:
        try:
            r = requests.get(p.hub.url(f"{PREFIX}/api/v2/monitor/health"), timeout=10)
            last = f"{r.status_code} {r.text[:500]}"
            if r.status_code == 200:
                health = r.json()
                if all(health.get(c, {}).get("status") == "healthy"
                       for c in ("metadatabase", "scheduler", "dag_processor", "triggerer")):
                    break
        except requests.RequestException as e:
            last = repr(e)
        assert time.monotonic() < deadline, f"Airflow not healthy through the hub after {HEALTH_S}s: {last}"
        time.sleep(1)

    # Anonymous: the UI's static shell only (the app asks the API, which wants a login) ...
    anon = requests.Session()
    r = anon.get(p.hub.url(f"{PREFIX}/"), timeout=30)
    assert r.status_code == 200 and f'<base href="{PREFIX}/"' in r.text, r.text[:500]
    for path in ("/dags", "/importErrors", "/dags/mlhub_retrain_publish_validate/dagRuns"):
        r = anon.get(p.hub.url(f"{PREFIX}/api/v2{path}"), timeout=30)
        assert r.status_code == 401, (path, r.status_code, r.text[:300])
    # ... and signing in (where the UI sends them) ends at the hub's login page, on its way
    # to the hub's OAuth authorization for Airflow's client.
    r = anon.get(p.hub.url(f"{PREFIX}/auth/login/"), timeout=30)
    url = urllib.parse.urlsplit(r.url)
    assert r.status_code == 200 and url.path == "/hub/login", (r.status_code, r.url)
    nxt = urllib.parse.parse_qs(url.query)["next"][0]
    assert nxt.startswith("/hub/api/oauth2/authorize?") and "client_id=service-airflow" in nxt, nxt
    assert 'id="username_input"' in r.text and 'id="password_input"' in r.text
    assert "_token" not in anon.cookies
    # FAB's password login is off: no Airflow password opens Airflow.
    r = anon.post(p.hub.url(f"{PREFIX}/auth/token"),
                  json={"username": "admin", "password": p.admin_password}, timeout=30)
    assert r.status_code in (401, 403, 404, 405), (r.status_code, r.text[:300])


# --------------------------------------------------------------------- 2. SSO and roles


def test_sso_sign_in_and_airflow_roles_from_the_hub(people):
    p = people
    seconds = {}
    tokens = {}
    for name in ("admin", "ada", "otto"):
        s, r, dt = sign_in_to_airflow(p, name)
        hops = [h.url for h in r.history]
        assert r.status_code == 200, (name, r.status_code, r.url, hops, r.text[:1000])
        assert urllib.parse.urlsplit(r.url).path.rstrip("/") == PREFIX, (name, r.url, hops)
        assert any("/hub/api/oauth2/authorize" in u for u in hops), hops
        assert any(f"{PREFIX}/auth/oauth-authorized/jupyterhub" in u for u in hops), hops
        assert f'<base href="{PREFIX}/"' in r.text
        tokens[name] = s.cookies.get("_token")
        assert tokens[name], (name, s.cookies.keys())
        # the JWT opens Airflow's REST API
        rr = af(p, tokens[name], "GET", "/dags")
        assert rr.status_code == 200, (name, rr.status_code, rr.text[:300])
        seconds[name] = dt
    record("airflow: hub session -> Airflow UI signed in (requests, OAuth round trip): "
           + ", ".join(f"{n} {t:.2f} s" for n, t in seconds.items()))

    roles = airflow_roles(p)
    assert {n: effective_role(roles[n]) for n in ("admin", "ada", "otto")} == {
        "admin": "Admin", "otto": "Op", "ada": "User"}, roles

    # nora (in no Airflow group) is signed in to the hub, but the hub refuses her at the
    # OAuth authorization step: 403, she never reaches Airflow's callback, no _token.
    s, r, _ = sign_in_to_airflow(p, "nora")
    assert r.status_code == 403, (r.status_code, r.url, r.text[:500])
    assert urllib.parse.urlsplit(r.url).path == "/hub/api/oauth2/authorize", r.url
    assert not any("oauth-authorized" in h.url for h in r.history), [h.url for h in r.history]
    assert "_token" not in s.cookies, s.cookies.keys()
    assert "nora" not in airflow_roles(p)
    # her hub session itself is fine (she is a member, just not of Airflow's group)
    assert s.get(p.hub.url("/hub/home"), timeout=30).status_code == 200

    # Roles are re-synced at every sign-in: ada joins airflow-ops -> Op at her next
    # sign-in; leaves it -> User again.
    r = p.hub.api(p.admin_token, "POST", f"/groups/{OP_GROUP}/users", json={"users": ["ada"]})
    assert r.status_code == 200, r.text
    try:
        airflow_token(p, "ada")  # a new hub session and Airflow sign-in
        assert effective_role(airflow_roles(p)["ada"]) == "Op", airflow_roles(p)
    finally:
        r = p.hub.api(p.admin_token, "DELETE", f"/groups/{OP_GROUP}/users", json={"users": ["ada"]})
        assert r.status_code == 200, r.text
    airflow_token(p, "ada")
    assert effective_role(airflow_roles(p)["ada"]) == "User", airflow_roles(p)


# --------------------------------------------------------------------- 3. DAGs from notebooks


def test_dag_written_in_a_notebook_runs(people, hello_dag):
    p = people
    token = hello_dag  # ada's, role User
    assert effective_role(airflow_roles(p)["ada"]) == "User"
    r = af(p, token, "PATCH", f"/dags/{HELLO}", json={"is_paused": False})
    assert r.status_code == 200 and r.json()["is_paused"] is False, (r.status_code, r.text[:500])
    t0 = time.monotonic()
    run_id = trigger(p, token, HELLO)
    run = wait_run(p, token, HELLO, run_id, HELLO_RUN_S)
    wall = time.monotonic() - t0
    assert run["triggering_user_name"] == "ada", run
    assert run["run_type"] == "manual", run
    assert xcom(p, token, HELLO, run_id, "hello") == HELLO_RESULT
    record(f"airflow: {HELLO} (1 task) trigger -> success: {wall:.1f} s (run duration {run['duration']:.1f} s)")


def test_only_users_let_into_airflow_get_the_dags_folder(people, hello_dag):
    """A DAG file is code Airflow runs with its own secrets: with MLHUB_AIRFLOW_GROUP,
    only its members (and hub admins) mount the DAGs volume in their notebooks."""
    p = people
    dags_path = f"/home/jovyan/{DAGS_DIR}"

    def mounts(name: str) -> dict:
        info = p.stack.container(f"{p.stack.project}-nb-{name}")
        assert info is not None, f"{name}'s notebook container is not there"
        return {m["Destination"]: m.get("Name") for m in info["Mounts"]}

    assert mounts("ada")[dags_path] == f"{p.stack.project}-airflow-dags"  # in airflow-users
    p.hub.start_server(p.user("nora"), "nora", timeout=SPAWN_S)  # in no group
    try:
        nora = mounts("nora")
        assert dags_path not in nora, nora
        assert "/home/jovyan" in nora  # her home, as always
    finally:
        p.hub.stop_server(p.user("nora"), "nora")


# --------------------------------------------------------------------- 4. a broken DAG


def test_broken_dag_shows_as_import_error_and_good_dags_still_run(people, hello_dag):
    p = people
    token = hello_dag
    t0 = time.monotonic()
    hub_write(p, "ada", f"{DAGS_DIR}/{BROKEN}", BROKEN_DAG)
    try:
        deadline = t0 + IMPORT_ERROR_S
        while True:
            errors = import_errors(p, token)
            if BROKEN in errors:
                break
            assert time.monotonic() < deadline, f"{BROKEN} not in import errors after {IMPORT_ERROR_S}s: {errors}"
            time.sleep(1)
        record(f"airflow: broken DAG written -> in importErrors: {time.monotonic() - t0:.1f} s")
        assert "SyntaxError" in errors[BROKEN], errors[BROKEN]
        assert set(errors) == {BROKEN}, errors  # the good DAGs parse
        r = af(p, token, "GET", f"/dags/{HELLO}")
        assert r.status_code == 200 and not r.json()["has_import_errors"], r.text[:500]

        t1 = time.monotonic()
        run_id = trigger(p, token, HELLO)
        run = wait_run(p, token, HELLO, run_id, HELLO_RUN_S)
        record(f"airflow: {HELLO} again, beside a broken DAG, trigger -> success: "
               f"{time.monotonic() - t1:.1f} s (run duration {run['duration']:.1f} s)")
    finally:
        hub_delete(p, "ada", f"{DAGS_DIR}/{BROKEN}")
    # deleting the file clears its import error
    deadline = time.monotonic() + IMPORT_ERROR_S
    while BROKEN in (errors := import_errors(p, token)):
        assert time.monotonic() < deadline, f"{BROKEN} still in import errors after deletion: {errors}"
        time.sleep(1)


# --------------------------------------------------------------------- 5. the example DAG


def model_versions(p) -> dict:
    r = requests.get(p.hub.url(f"/services/models/api/models/{MODEL}"),
                     headers={"Authorization": f"token {p.admin_token}"}, timeout=30)
    if r.status_code == 404:
        return {"versions": [], "labels": {}}
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()


def test_example_dag_retrains_publishes_and_validates(people):
    p = people
    token = airflow_token(p, "admin")
    before = {v["version"] for v in model_versions(p)["versions"]}
    r = af(p, token, "GET", f"/dags/{EXAMPLE}")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    r = af(p, token, "PATCH", f"/dags/{EXAMPLE}", json={"is_paused": False})
    assert r.status_code == 200, (r.status_code, r.text[:500])

    t0 = time.monotonic()
    run_id = trigger(p, token, EXAMPLE)
    run = wait_run(p, token, EXAMPLE, run_id, EXAMPLE_RUN_S)
    wall = time.monotonic() - t0
    assert run["triggering_user_name"] == "admin", run

    published = xcom(p, token, EXAMPLE, run_id, "retrain_and_publish")
    validated = xcom(p, token, EXAMPLE, run_id, "validate")
    version = published["version"]
    assert version not in before, (version, before)
    assert validated["version"] == version, (published, validated)
    assert validated["max_abs_diff"] <= 1e-4, validated

    model = model_versions(p)
    versions = {v["version"]: v for v in model["versions"]}
    assert set(versions) - before == {version}, (before, model)
    assert versions[version]["state"] == "AVAILABLE", model
    assert versions[version]["published_by"] == "service/airflow", model
    assert model["labels"].get("candidate") == version, model

    rid = urllib.parse.quote(run_id, safe="")
    tis = af(p, token, "GET", f"/dags/{EXAMPLE}/dagRuns/{rid}/taskInstances").json()["task_instances"]
    per_task = ", ".join(f"{ti['task_id']} {ti['duration']:.1f} s" for ti in tis)
    record(f"airflow: {EXAMPLE} trigger -> success: {wall:.1f} s (run duration {run['duration']:.1f} s; "
           f"{per_task}); published version {version}, max |diff| {validated['max_abs_diff']:.2e}")
