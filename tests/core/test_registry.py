"""The registry's pure logic: names, versions, tag parsing, and the state derived from tags."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from opsctl.core import registry as reg
from opsctl.errors import OpsctlError, UsageError


@dataclass(frozen=True)
class Tag:  # the fields of adapters.registry.TagRecord
    name: str
    commit: str
    timestamp: int
    message: str = ""
    annotated: bool = True
    tagger: str = "ann"
    tagger_email: str = "ann@example.com"
    tz_offset: str = "+0200"


class Tags:
    """A scripted tag history: each tag one second after the previous one unless told."""

    def __init__(self) -> None:
        self.tags: list[Tag] = []
        self.clock = itertools.count(1_700_000_000)

    def register(self, name, version, commit, **kw):
        self._add(
            f"{name}@{version}",
            commit,
            reg.registration_message(name, version, "m.pkl", "abc", kw.pop("run", None)),
            **kw,
        )

    def assign(self, name, stage, commit, rollback=False, **kw):
        self._add(
            f"{name}#{stage}#{self._counter(name)}",
            commit,
            reg.assignment_message(name, stage, "?", None, rollback),
            **kw,
        )

    def unassign(self, name, stage, commit, **kw):
        self._add(f"{name}#{stage}!#{self._counter(name)}", commit, "Unassigning", **kw)

    def _counter(self, name):
        return (
            max(
                [p["counter"] or 0 for t in self.tags if (p := reg.parse_tag_name(t.name)) and p["artifact"] == name],
                default=0,
            )
            + 1
        )

    def _add(self, name, commit, message, at=None, annotated=True):
        self.tags.append(Tag(name, commit, at if at is not None else next(self.clock), message, annotated))

    def model(self, name="churn") -> reg.Model:
        return reg.build_registry(self.tags)[name]


# -- names and versions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected", [("1.2.0", "v1.2.0"), ("v1.2.0", "v1.2.0"), ("0.0.1-rc.1+b7", "v0.0.1-rc.1+b7")]
)
def test_versions_are_normalised_with_gtos_v_prefix(text, expected):
    assert reg.normalize_version(text) == expected


@pytest.mark.parametrize("text", ["1.2", "v1", "V1.2.0", "1.2.0.0", "01.2.0", "latest", "", "1.2.0-"])
def test_malformed_versions_are_usage_errors(text):
    with pytest.raises(UsageError, match="invalid version"):
        reg.normalize_version(text)


def test_version_order_is_semantic_versioning():
    import semver  # GTO's own comparison (a dev dependency, via gto), to prove ours agrees

    versions = [
        "v1.0.0",
        "v1.0.0-rc.1",
        "v1.0.0-rc.10",
        "v1.0.0-rc.2",
        "v1.0.0-alpha",
        "v1.0.0-1",
        "v0.10.0",
        "v0.9.9",
        "v2.0.0",
        "v1.0.0-alpha.beta",
        "v1.0.0-beta.11",
        "v1.0.0-beta.2",
        "v1.0.1",
    ]
    ours = sorted(versions, key=reg.version_key)
    theirs = sorted(versions, key=lambda v: semver.Version.parse(v[1:]))
    assert ours == theirs


@pytest.mark.parametrize(
    "existing, expected",
    [
        ([], "v0.0.1"),
        (["v0.0.1"], "v0.0.2"),
        (["v0.0.9", "v0.0.10", "v0.0.2"], "v0.0.11"),
        (["v1.2.0", "v0.9.0"], "v1.2.1"),
        (["v1.0.0-rc.1"], "v1.0.1"),  # semver's bump_patch, as `gto register` uses
        (["v2.0.0+build.5"], "v2.0.1"),
    ],
)
def test_next_version_bumps_the_patch_of_the_highest(existing, expected):
    assert reg.next_version(existing) == expected


@pytest.mark.parametrize("name", ["churn", "a", "my-model_2", "team/churn"])
def test_valid_names(name):
    assert reg.check_name(name, register=True) == name


@pytest.mark.parametrize("name", ["-churn", "churn-", "chu rn", "churn@v1", "churn#prod", "", "a:b"])
def test_invalid_names_are_usage_errors(name):
    with pytest.raises(UsageError, match="invalid model name"):
        reg.check_name(name, register=True)


def test_stage_names_follow_gtos_rule_and_its_config():
    assert reg.check_stage("prod") == "prod"
    with pytest.raises(UsageError, match="invalid stage"):
        reg.check_stage("prod!")
    with pytest.raises(UsageError, match="not allowed"):
        reg.check_stage("qa", ["dev", "prod"])


# -- tag names: exactly what GTO reads -----------------------------------------------------

TAG_NAMES = [
    "churn@v0.0.1",
    "churn@v1.0.0-rc.1+b",
    "churn#prod#3",
    "churn#prod",
    "churn#prod!#4",
    "churn@v0.0.2!",
    "churn@deprecated",
    "churn@deprecated#7",
    "sub/dir=churn@v1.0.0",
    "team/churn#dev#1",
    "v1.0.0",
    "churn@1.0.0",
    "churn#prod#x",
    "churn@created",
    "release-2024",
    "churn@v0.0.1#2",
]


@pytest.mark.parametrize("name", TAG_NAMES)
def test_tag_names_parse_as_gto_parses_them(name):
    import gto.tag as gto_tag  # the dev extra installs gto: a missing one must fail, not skip

    ours = reg.parse_tag_name(name)
    theirs = gto_tag.parse_name(name, raise_on_fail=False)
    if "action" not in theirs:  # not a registry tag for GTO (or "@created", which GTO cannot index)
        assert ours is None
        return
    assert ours["artifact"] == theirs["name"]
    assert ours["kind"] == theirs["action"].value
    assert ours["version"] == theirs.get("version")
    assert ours["stage"] == theirs.get("stage")
    assert ours["counter"] == theirs.get("counter")


def test_trailers_are_the_last_paragraphs_key_value_lines():
    message = reg.registration_message("churn", "v0.0.1", "models/model.pkl", "d41d8", "run-1")
    assert message.splitlines()[0] == "Registering artifact churn version v0.0.1"  # GTO's own first line
    assert reg.parse_trailers(message) == {"path": "models/model.pkl", "md5": "d41d8", "run": "run-1"}
    assert reg.parse_trailers("Registering artifact churn version v0.0.1") == {}
    assert reg.parse_trailers("Fixed a bug\n\nsee: the docs\nand more prose") == {}


# -- the state derived from tags -----------------------------------------------------------


def test_registration_and_stages():
    t = Tags()
    t.register("churn", "v0.0.1", "c1", run="r1")
    t.register("churn", "v0.0.2", "c2")
    t.assign("churn", "prod", "c1")
    t.assign("churn", "staging", "c2")
    model = t.model()
    assert [v.version for v in model.versions] == ["v0.0.2", "v0.0.1"]
    assert model.latest == "v0.0.2"
    assert model.stages == {"prod": "v0.0.1", "staging": "v0.0.2"}
    first = model.find("v0.0.1")
    assert (first.commit, first.run, first.path, first.stages, first.author) == ("c1", "r1", "m.pkl", ("prod",), "ann")
    assert first.created_at.utcoffset().total_seconds() == 7200
    assert model.counter == 2


def test_the_newest_assignment_wins_and_rollback_goes_back_one_step_at_a_time():
    t = Tags()
    for i in (1, 2, 3):
        t.register("churn", f"v0.0.{i}", f"c{i}")
    for i in (1, 2, 3):
        t.assign("churn", "prod", f"c{i}")
    model = t.model()
    assert model.stages["prod"] == "v0.0.3" and model.rollback_to["prod"] == "v0.0.2"

    t.assign("churn", "prod", "c2", rollback=True)
    model = t.model()
    assert model.stages["prod"] == "v0.0.2" and model.rollback_to["prod"] == "v0.0.1"
    t.assign("churn", "prod", "c1", rollback=True)
    model = t.model()
    assert model.stages["prod"] == "v0.0.1" and "prod" not in model.rollback_to

    history = [(e.event, e.version, e.from_version, e.to_version) for e in model.history if e.stage]
    assert history == [
        ("promotion", "v0.0.1", None, "v0.0.1"),
        ("promotion", "v0.0.2", "v0.0.1", "v0.0.2"),
        ("promotion", "v0.0.3", "v0.0.2", "v0.0.3"),
        ("rollback", "v0.0.2", "v0.0.3", "v0.0.2"),
        ("rollback", "v0.0.1", "v0.0.2", "v0.0.1"),
    ]


def test_promoting_an_older_version_again_is_a_step_rollback_can_undo():
    t = Tags()
    for i in (1, 2):
        t.register("churn", f"v0.0.{i}", f"c{i}")
    t.assign("churn", "prod", "c1")
    t.assign("churn", "prod", "c2")
    t.assign("churn", "prod", "c1")  # a plain promotion of the older one
    model = t.model()
    assert model.stages["prod"] == "v0.0.1" and model.rollback_to["prod"] == "v0.0.2"


def test_same_second_assignments_are_ordered_by_their_counter():
    t = Tags()
    t.register("churn", "v0.0.1", "c1", at=100)
    t.register("churn", "v0.0.2", "c2", at=100)
    t.assign("churn", "prod", "c2", at=100)
    t.assign("churn", "prod", "c1", at=100)
    assert t.model().stages["prod"] == "v0.0.1"
    assert [e.event for e in t.model().history] == ["registration", "registration", "promotion", "promotion"]


def test_unassignment_and_deregistration_as_gto_writes_them():
    t = Tags()
    for i in (1, 2):
        t.register("churn", f"v0.0.{i}", f"c{i}")
    t.assign("churn", "prod", "c1")
    t.assign("churn", "prod", "c2")
    t.unassign("churn", "prod", "c2")  # GTO: prod falls back to the version still assigned
    model = t.model()
    assert model.stages["prod"] == "v0.0.1"
    assert model.history[-1].event == "unassignment"
    assert (model.history[-1].from_version, model.history[-1].to_version) == ("v0.0.2", "v0.0.1")

    t._add("churn@v0.0.1!", "c1", "Deregistering")
    model = t.model()
    assert "prod" not in model.stages  # a deregistered version leaves its stages
    assert model.latest == "v0.0.2"
    assert model.find("v0.0.1").active is False
    assert reg.next_version(v.version for v in model.versions) == "v0.0.3"


def test_lightweight_tags_are_ignored_but_their_counters_count():
    t = Tags()
    t.register("churn", "v0.0.1", "c1")
    t._add("churn#prod#7", "c1", "", annotated=False)
    model = t.model()
    assert model.stages == {} and model.counter == 7


def test_a_stage_on_a_bare_commit_and_deprecation():
    t = Tags()
    t._add("churn#dev#1", "c9", "Assigning stage dev to artifact churn commit c9")  # gto assign --skip-registration
    t.register("old", "v0.0.1", "c1")
    t._add("old@deprecated", "c1", "Deprecating")
    registry = reg.build_registry(t.tags)
    assert registry["churn"].stages == {"dev": "c9"} and registry["churn"].latest is None
    assert registry["old"].deprecated is True


def test_a_stage_assignment_waits_for_the_next_second_and_refuses_a_future_clock():
    class Clock:
        """Wall time that a sleep moves on by ``rate`` of the time slept (NTP slewing: < 1)."""

        def __init__(self, now: float, rate: float = 1.0) -> None:
            self.now, self.rate, self.slept = now, rate, []

        def __call__(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.slept.append(round(seconds, 2))
            self.now += seconds * self.rate

    clock = Clock(100.25)
    reg._wait_past(100, "churn", "prod", clock=clock, sleep=clock.sleep)
    assert clock.slept == [0.76] and int(clock.now) == 101
    reg._wait_past(99, "churn", "prod", clock=clock, sleep=clock.sleep)
    assert clock.slept == [0.76]
    slewed = Clock(100.25, rate=0.98)  # the first sleep wakes the wall clock at 100.99: sleep again
    reg._wait_past(100, "churn", "prod", clock=slewed, sleep=slewed.sleep)
    assert len(slewed.slept) == 2 and int(slewed.now) == 101
    slept: list = []
    with pytest.raises(OpsctlError, match="in the future"):
        reg._wait_past(200, "churn", "prod", clock=lambda: 100.0, sleep=slept.append)
