"""hub.options: what a user may ask for when starting a server (user_options from
the spawn form or straight from the REST API, so never trusted), quotas from hub
group properties, and the spawn form's HTML with live free-GPU counts."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.gpus.inventory import GPU, from_ids
from hub.gpus.ledger import Holding, Ledger
from hub.options import (
    STANDARD_MEMORY,
    Environment,
    OptionsError,
    Quota,
    ServerOptions,
    fmt_bytes,
    memory_choices,
    options_from_form,
    parse_user_options,
    quota_for,
    render_form,
    slug,
)

M = 1024**2
G = 1024**3

TF = Environment("tensorflow-cuda", "TensorFlow (CUDA)", "mlhub/notebook:tf")
PT = Environment("pytorch", "PyTorch", "mlhub/notebook:pt")
ENVS = [TF, PT]
QUOTA = Quota(gpus=2, mem=16 * G)
DEFAULT_MEM = 8 * G
TOTAL = 4


def parse(raw, quota=QUOTA, total=TOTAL, default_mem=DEFAULT_MEM, envs=ENVS):
    return parse_user_options(raw, envs, quota, default_mem, total)


# ---------------------------------------------------------------- parse_user_options

GOOD = [
    ({}, TF, 0, 8 * G),
    (None, TF, 0, 8 * G),
    ({"environment": "pytorch"}, PT, 0, 8 * G),
    ({"environment": ""}, TF, 0, 8 * G),
    ({"environment": None}, TF, 0, 8 * G),
    ({"gpus": 2}, TF, 2, 8 * G),
    ({"gpus": "1"}, TF, 1, 8 * G),
    ({"gpus": " 1 "}, TF, 1, 8 * G),
    ({"gpus": 0}, TF, 0, 8 * G),
    ({"gpus": "0"}, TF, 0, 8 * G),
    ({"memory": "16G"}, TF, 0, 16 * G),
    ({"memory": "4g"}, TF, 0, 4 * G),
    ({"memory": "512M"}, TF, 0, 512 * M),
    ({"memory": "2GiB"}, TF, 0, 2 * G),
    ({"memory": 4 * G}, TF, 0, 4 * G),
    ({"memory": ""}, TF, 0, 8 * G),
    ({"memory": None}, TF, 0, 8 * G),
    ({"environment": "pytorch", "gpus": "2", "memory": "16G"}, PT, 2, 16 * G),
]


@pytest.mark.parametrize("raw, env, gpus, mem", GOOD, ids=[repr(g[0]) for g in GOOD])
def test_good_requests(raw, env, gpus, mem):
    assert parse(raw) == ServerOptions(env, gpus, mem)


def test_default_memory_is_capped_by_the_quota():
    assert parse({}, quota=Quota(1, 4 * G)).mem == 4 * G
    assert parse({"gpus": 0}, quota=Quota(0, 1 * G), total=0) == ServerOptions(TF, 0, 1 * G)


BAD = [
    ({"cpus": 4}, "Unknown server option(s): cpus. Allowed: environment, gpus, memory."),
    ({"zeta": 1, "alpha": 2, "gpus": 1}, "Unknown server option(s): alpha, zeta. Allowed: environment, gpus, memory."),
    ({"environment": "cuda"}, "Unknown environment 'cuda'; choose one of: tensorflow-cuda, pytorch."),
    ({"environment": "PyTorch"}, "Unknown environment 'PyTorch'; choose one of: tensorflow-cuda, pytorch."),
    ({"environment": 7}, "Unknown environment 7; choose one of: tensorflow-cuda, pytorch."),
    ({"gpus": "two"}, "gpus must be a whole number, got 'two'."),
    ({"gpus": ""}, "gpus must be a whole number, got ''."),
    ({"gpus": 1.5}, "gpus must be a whole number, got 1.5."),
    ({"gpus": 1.0}, "gpus must be a whole number, got 1.0."),
    ({"gpus": "1.0"}, "gpus must be a whole number, got '1.0'."),
    ({"gpus": "+1"}, "gpus must be a whole number, got '+1'."),
    ({"gpus": "0x1"}, "gpus must be a whole number, got '0x1'."),
    ({"gpus": True}, "gpus must be a whole number, got True."),
    ({"gpus": None}, "gpus must be a whole number, got None."),
    ({"gpus": [1]}, "gpus must be a whole number, got [1]."),
    ({"gpus": {"n": 1}}, "gpus must be a whole number, got {'n': 1}."),
    ({"gpus": -1}, "gpus cannot be negative."),
    ({"gpus": "-2"}, "gpus cannot be negative."),
    ({"gpus": 3}, "You asked for 3 GPU(s); your quota is 2. Ask an admin to raise your group's gpu_quota."),
    ({"gpus": "99999999999999999999"}, "You asked for 99999999999999999999 GPU(s); your quota is 2."),
    ({"memory": "lots"}, "memory: expected a size such as 512M, 4G or 16G."),
    ({"memory": "-4G"}, "memory: expected a size such as 512M, 4G or 16G."),
    ({"memory": ["8G"]}, "memory: expected a size such as 512M, 4G or 16G."),
    ({"memory": "10M"}, "memory: expected at least 64M (a notebook server needs more than that)."),
    ({"memory": 0}, "memory: expected at least 64M (a notebook server needs more than that)."),
    ({"memory": "32G"}, "You asked for 32G of memory; your quota is 16G."),
    ({"memory": "16.5G"}, "You asked for 16896M of memory; your quota is 16G."),
    ({"memory": "1T"}, "You asked for 1T of memory; your quota is 16G."),
]


@pytest.mark.parametrize("raw, message", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_requests_say_what_to_change(raw, message):
    with pytest.raises(OptionsError) as exc:
        parse(raw)
    assert str(exc.value).startswith(message), str(exc.value)


def test_more_gpus_than_the_host_has():
    with pytest.raises(OptionsError) as exc:
        parse({"gpus": 5}, quota=Quota(8, 16 * G), total=4)
    assert str(exc.value) == "You asked for 5 GPU(s); this host has 4."


def test_gpus_on_a_cpu_only_host_suggest_a_cpu_server():
    with pytest.raises(OptionsError) as exc:
        parse({"gpus": 1}, quota=Quota(1, 16 * G), total=0)
    assert str(exc.value) == "You asked for 1 GPU(s); this host has 0. Start a CPU-only server (0 GPUs)."
    assert parse({"gpus": 0}, quota=Quota(1, 16 * G), total=0).gpus == 0


def test_zero_gpu_quota_allows_cpu_servers_only():
    assert parse({}, quota=Quota(0, 16 * G)).gpus == 0
    with pytest.raises(OptionsError, match="your quota is 0"):
        parse({"gpus": 1}, quota=Quota(0, 16 * G))


def test_options_error_is_a_value_error():
    assert issubclass(OptionsError, ValueError)


@pytest.mark.parametrize("env", [["pytorch"], {"key": "pytorch"}])
def test_unhashable_environment_is_an_options_error(env):
    with pytest.raises(OptionsError, match="Unknown environment"):
        parse({"environment": env})


def test_infinite_gpus_is_an_options_error():
    with pytest.raises(OptionsError, match="whole number"):
        parse({"gpus": float("inf")})


def test_nan_and_infinite_memory_are_options_errors():
    for value in (float("nan"), float("inf")):
        with pytest.raises(OptionsError, match="memory: expected"):
            parse({"memory": value})
    with pytest.raises(OptionsError, match="whole number"):
        parse({"gpus": float("nan")})


# JSON values as the REST API may deliver them
json_scalars = st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_infinity=False) | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.fixed_dictionaries(
        {},
        optional={
            "environment": st.sampled_from(["", "pytorch", "tensorflow-cuda", "x"]) | json_scalars,
            "gpus": json_values | st.sampled_from(["0", "1", "2", "3", " 2", "-1"]),
            "memory": json_values | st.sampled_from(["1G", "8G", "16G", "17G", "64M", "63M", "2gib"]),
        },
    ),
    extra=st.dictionaries(st.text(min_size=1, max_size=5), json_scalars, max_size=1),
    quota_gpus=st.integers(0, 4),
    total=st.integers(0, 4),
)
def test_any_request_is_accepted_within_limits_or_refused_with_options_error(raw, extra, quota_gpus, total):
    raw = {**raw, **extra}
    quota = Quota(quota_gpus, 16 * G)
    try:
        opts = parse(raw, quota=quota, total=total)
    except OptionsError as e:
        assert str(e)  # a message the user can act on
        return
    assert set(raw) <= {"environment", "gpus", "memory"}
    assert opts.environment in ENVS
    assert 0 <= opts.gpus <= min(quota_gpus, total)
    assert 64 * M <= opts.mem <= quota.mem


# ---------------------------------------------------------------- quota_for

DEFAULT = Quota(gpus=1, mem=8 * G)


def test_no_groups_gets_the_default():
    assert quota_for([], DEFAULT) == DEFAULT
    assert quota_for([("students", {}), ("misc", None)], DEFAULT) == DEFAULT
    assert quota_for([("x", {"unrelated": 5})], DEFAULT) == DEFAULT


def test_several_groups_largest_wins_per_resource():
    groups = [
        ("students", {"gpu_quota": 1, "mem_quota": "32G"}),
        ("ml-team", {"gpu_quota": 4, "mem_quota": "16G"}),
        ("readers", {"mem_quota": "4G"}),
    ]
    assert quota_for(groups, DEFAULT) == Quota(4, 32 * G)


def test_group_quota_may_be_lower_than_the_default():
    # a group's quota replaces the default, even downwards (an explicit 0 is a quota)
    assert quota_for([("interns", {"gpu_quota": 0, "mem_quota": "2G"})], DEFAULT) == Quota(0, 2 * G)


def test_property_values_as_strings_and_bytes():
    groups = [("a", {"gpu_quota": "3", "mem_quota": str(24 * G)}), ("b", {"mem_quota": 12 * G})]
    assert quota_for(groups, DEFAULT) == Quota(3, 24 * G)


@pytest.mark.parametrize(
    "props",
    [
        {"gpu_quota": "lots"},
        {"gpu_quota": None},
        {"gpu_quota": [2]},
        {"gpu_quota": "2.5"},
        {"mem_quota": "huge"},
        {"mem_quota": "1M"},  # below the 64M minimum
        {"mem_quota": None},
    ],
)
def test_bad_property_values_are_ignored(props):
    assert quota_for([("broken", props)], DEFAULT) == DEFAULT
    good = ("ml-team", {"gpu_quota": 2, "mem_quota": "16G"})
    assert quota_for([("broken", props), good], DEFAULT) == Quota(2, 16 * G)
    assert quota_for([good, ("broken", props)], DEFAULT) == Quota(2, 16 * G)


def test_bad_gpu_quota_does_not_hide_the_groups_mem_quota():
    assert quota_for([("ml-team", {"gpu_quota": "two", "mem_quota": "32G"})], DEFAULT) == Quota(1, 32 * G)


def test_negative_gpu_quota_does_not_lock_the_user_out():
    quota = quota_for([("typo", {"gpu_quota": -1})], DEFAULT)
    assert parse({}, quota=quota).gpus == 0


# ---------------------------------------------------------------- memory_choices, helpers


@pytest.mark.parametrize(
    "default, quota, expected",
    [
        (8 * G, 16 * G, [2 * G, 4 * G, 8 * G, 16 * G]),
        (8 * G, 128 * G, STANDARD_MEMORY),
        (8 * G, 1 * G, [1 * G]),  # quota below the smallest standard size
        (3 * G, 16 * G, [2 * G, 3 * G, 4 * G, 8 * G, 16 * G]),  # an odd default is offered
        (8 * G, 6 * G, [2 * G, 4 * G, 6 * G]),  # default above quota: the quota is offered
        (256 * G, 512 * G, STANDARD_MEMORY + [256 * G]),
        (512 * M, 16 * G, [512 * M, 2 * G, 4 * G, 8 * G, 16 * G]),
    ],
)
def test_memory_choices(default, quota, expected):
    assert memory_choices(default, quota) == expected


def test_standard_memory_is_2g_to_128g():
    assert [fmt_bytes(m) for m in STANDARD_MEMORY] == ["2G", "4G", "8G", "16G", "32G", "64G", "128G"]


@pytest.mark.parametrize(
    "n, text",
    [(512 * M, "512M"), (G, "1G"), (1536 * M, "1536M"), (2 * 1024**4, "2T"), (G + 1, "1.0G"), (100 * M + 5, "100M")],
)
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


def test_slug():
    assert slug("TensorFlow (CUDA)") == "tensorflow-cuda"
    assert slug("  PyTorch 2.3 ") == "pytorch-2-3"
    assert slug("!!!") == "default"


# ---------------------------------------------------------------- options_from_form


def test_options_from_form_takes_the_first_value_of_known_fields():
    form = {
        "environment": ["pytorch", "tensorflow-cuda"],
        "gpus": ["1"],
        "memory": ["8G"],
        "_xsrf": ["token"],
        "cpus": ["64"],
    }
    assert options_from_form(form) == {"environment": "pytorch", "gpus": "1", "memory": "8G"}


def test_options_from_form_skips_missing_and_empty_fields():
    assert options_from_form({}) == {}
    assert options_from_form({"gpus": [], "memory": ["4G"]}) == {"memory": "4G"}


def test_options_from_form_result_is_validated_like_the_rest_api():
    opts = options_from_form({"environment": ["pytorch"], "gpus": ["2"], "memory": ["16G"]})
    assert parse(opts) == ServerOptions(PT, 2, 16 * G)
    with pytest.raises(OptionsError, match="quota is 2"):
        parse(options_from_form({"gpus": ["3"]}))


# ---------------------------------------------------------------- render_form


class FormParser(HTMLParser):
    """Collects the form's <select>s (name -> [(value, label, selected)]), hidden
    inputs, the holders list items and the free-GPU badge text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.selects: dict[str, list[tuple[str, str, bool]]] = {}
        self.hidden: dict[str, str] = {}
        self.holders: list[str] = []
        self.badge = None
        self._select = self._option = None
        self._in_li = self._in_badge = False
        self._text = ""
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("input", "br"):
            self.stack.append(tag)
        if tag == "select":
            self._select = a["name"]
            self.selects[self._select] = []
        elif tag == "option":
            self._option = (a["value"], "selected" in a)
            self._text = ""
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a["value"]
        elif tag == "li":
            self._in_li, self._text = True, ""
        elif a.get("id") == "mlhub-free-gpus":
            self._in_badge, self._text = True, ""

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
        self.stack.pop()
        if tag == "option":
            self.selects[self._select].append((self._option[0], self._text, self._option[1]))
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "li":
            self.holders.append(self._text)
            self._in_li = False
        elif self._in_badge and tag in ("span", "p"):
            self.badge, self._in_badge = self._text, False

    def handle_data(self, data):
        self._text += data


def parse_form(text: str) -> FormParser:
    p = FormParser()
    p.feed(text)
    p.close()
    assert p.stack == [], p.stack
    return p


def form(inventory, holdings=(), quota=Quota(3, 16 * G), slots=1, envs=ENVS, default_mem=DEFAULT_MEM):
    led = Ledger.build([g.id for g in inventory], holdings, slots)
    return render_form(envs, inventory, led, quota, default_mem)


H200 = [GPU(str(i), f"GPU-{i}", "NVIDIA H200", 143771) for i in range(4)]


def test_form_shows_free_count_options_and_holders():
    text = form(H200, [Holding("ann", "", ("0",)), Holding("bob", "train", ("2",))])
    f = parse_form(text)
    assert f.badge == "2 of 4 free"
    assert 'class="badge text-bg-success"' in text
    assert f.selects["gpus"] == [
        ("0", "None (CPU only)", True),
        ("1", "1 GPU", False),
        ("2", "2 GPUs", False),
        ("3", "3 GPUs (only 2 free now)", False),
    ]
    assert f.holders == [
        "GPU 0 (NVIDIA H200, 140 GiB): ann",
        "GPU 1 (NVIDIA H200, 140 GiB): free",
        "GPU 2 (NVIDIA H200, 140 GiB): bob/train",
        "GPU 3 (NVIDIA H200, 140 GiB): free",
    ]
    assert "Your quota: 3 GPU(s)." in text
    assert f.selects["environment"] == [
        ("tensorflow-cuda", "TensorFlow (CUDA)", False),
        ("pytorch", "PyTorch", False),
    ]
    assert f.hidden == {}


def test_form_when_every_gpu_is_taken():
    text = form(H200[:2], [Holding("ann", "", ("0", "1"))], quota=Quota(2, 16 * G))
    f = parse_form(text)
    assert f.badge == "0 of 2 free"
    assert 'class="badge text-bg-secondary"' in text
    assert [label for _, label, _ in f.selects["gpus"]] == [
        "None (CPU only)",
        "1 GPU (only 0 free now)",
        "2 GPUs (only 0 free now)",
    ]
    assert f.holders == ["GPU 0 (NVIDIA H200, 140 GiB): ann", "GPU 1 (NVIDIA H200, 140 GiB): ann"]


def test_form_offers_no_more_gpus_than_quota_or_host():
    assert len(parse_form(form(H200, quota=Quota(8, 16 * G))).selects["gpus"]) == 1 + 4
    assert len(parse_form(form(H200, quota=Quota(1, 16 * G))).selects["gpus"]) == 1 + 1
    f = parse_form(form(H200, quota=Quota(0, 16 * G)))
    assert f.selects["gpus"] == [("0", "None (CPU only)", True)]


def test_form_with_shared_gpus_lists_every_holder():
    holdings = [Holding("ann", "", ("0",)), Holding("bob", "", ("0",)), Holding("cy", "", ("1",))]
    f = parse_form(form(from_ids(("0", "1")), holdings, slots=2))
    assert f.badge == "1 of 2 free"  # GPU 1 still has a slot
    assert f.holders == [
        "GPU 0 (listed in MLHUB_GPUS): ann, bob",
        "GPU 1 (listed in MLHUB_GPUS): cy",
    ]


def test_form_escapes_user_server_model_and_environment_names():
    evil_user = "<script>alert(1)</script>"
    inventory = [GPU("0", model="<b>Fake</b> & GPU"), GPU("1")]
    envs = [Environment('x" onmouseover="alert(1)', "R & <Stats>", "img")]
    text = form(inventory, [Holding(evil_user, 'nb"><img src=x>', ("0",))], envs=envs)
    assert "<script>" not in text
    assert "<img" not in text
    assert "<b>" not in text
    assert 'onmouseover="alert' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;/nb&quot;&gt;&lt;img src=x&gt;" in text
    f = parse_form(text)
    assert f.holders == [
        'GPU 0 (<b>Fake</b> & GPU): <script>alert(1)</script>/nb"><img src=x>',
        "GPU 1: free",
    ]
    assert f.selects["environment"] == [('x" onmouseover="alert(1)', "R & <Stats>", False)]


def test_form_on_a_cpu_only_host():
    text = form([], quota=Quota(1, 16 * G))
    f = parse_form(text)
    assert f.badge == "This host has no GPUs: servers run on CPUs."
    assert f.hidden == {"gpus": "0"}
    assert "gpus" not in f.selects
    assert f.holders == []
    assert "free" not in (f.badge or "").split()


def test_form_memory_choices_with_the_default_selected():
    f = parse_form(form(H200, quota=Quota(1, 16 * G), default_mem=8 * G))
    assert f.selects["memory"] == [
        ("2G", "2GB", False),
        ("4G", "4GB", False),
        ("8G", "8GB", True),
        ("16G", "16GB", False),
    ]
    # quota below the default: the quota is the (selected) default
    f = parse_form(form(H200, quota=Quota(1, 6 * G), default_mem=8 * G))
    assert f.selects["memory"][-1] == ("6G", "6GB", True)
    assert sum(sel for _, _, sel in f.selects["memory"]) == 1
    assert "Your quota: 6GB." in form(H200, quota=Quota(1, 6 * G))


@settings(max_examples=60, deadline=None)
@given(
    n_gpus=st.integers(0, 5),
    held=st.lists(st.integers(0, 4), unique=True, max_size=5),
    quota_gpus=st.integers(0, 6),
    quota_mem=st.sampled_from([1 * G, 3 * G, 6 * G, 16 * G, 200 * G]),
    default_mem=st.sampled_from([512 * M, 2 * G, 8 * G, 24 * G]),
)
def test_everything_the_form_offers_is_accepted(n_gpus, held, quota_gpus, quota_mem, default_mem):
    """Each choice in the form, submitted through options_from_form, passes validation."""
    inventory = from_ids(tuple(str(i) for i in range(n_gpus)))
    holdings = [Holding(f"u{i}", "", (str(i),)) for i in held if i < n_gpus]
    quota = Quota(quota_gpus, quota_mem)
    f = parse_form(form(inventory, holdings, quota=quota, default_mem=default_mem))
    gpu_values = [v for v, _, _ in f.selects["gpus"]] if "gpus" in f.selects else [f.hidden["gpus"]]
    assert gpu_values == [str(n) for n in range(min(quota_gpus, n_gpus) + 1)]
    for field in ("environment", "memory"):
        for value, _, _ in f.selects[field]:
            opts = options_from_form({field: [value]})
            parse_user_options(opts, ENVS, quota, default_mem, n_gpus)
    for value in gpu_values:
        assert parse_user_options(options_from_form({"gpus": [value]}), ENVS, quota, default_mem, n_gpus).gpus == int(value)
    if n_gpus:
        assert f.badge == f"{n_gpus - len(holdings)} of {n_gpus} free"


def test_environment_keys_keep_non_latin_labels_apart():
    assert slug("深度学习") != slug("机器学习")
    assert slug("深度学习 (GPU)") == "深度学习-gpu"


@pytest.mark.parametrize("raw", [
    "TensorFlow (GPU)=mlhub/notebook:gpu;TensorFlow GPU=mlhub/notebook:cpu",
    "TF=a:1;tf=b:1",
])
def test_environments_that_would_be_one_choice_stop_startup(raw):
    from hub.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as e:
        load_settings({"MLHUB_ENVIRONMENTS": raw})
    assert "MLHUB_ENVIRONMENTS=" in str(e.value) and "rename one" in str(e.value)


def test_each_environment_is_reachable_by_its_key():
    from hub.settings import load_settings

    s = load_settings({"MLHUB_ENVIRONMENTS": "深度学习=a:1;机器学习=b:1;TensorFlow (GPU)=c:1"})
    envs = [Environment(slug(label), label, image) for label, image in s.environments]
    for env in envs:
        picked = parse_user_options({"environment": env.key}, envs, Quota(1, 8 * G), 4 * G, 0)
        assert picked.environment.image == env.image
