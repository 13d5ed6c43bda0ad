from __future__ import annotations

import datetime
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.index import Candidate, hash_namespace, index_namespaces, search_order

DIGEST = "0123456789abcdef" * 4
UTC = datetime.timezone.utc


def test_index_namespaces_returns_latest_pushdate_and_hash_in_order() -> None:
    assert index_namespaces(3, "builder", DIGEST, 1478546787) == (
        "docker.images.v2.level-3.builder.latest",
        "docker.images.v2.level-3.builder.pushdate.2016.11-07-192627",
        f"docker.images.v2.level-3.builder.hash.{DIGEST}",
    )


def test_index_namespaces_accepts_aware_datetime_and_converts_to_utc() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=-8))
    when = datetime.datetime(2016, 11, 7, 11, 26, 27, tzinfo=tz)
    assert index_namespaces(1, "b", DIGEST, when)[1].endswith("pushdate.2016.11-07-192627")


def test_index_namespaces_zero_pads_the_push_date() -> None:
    when = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert index_namespaces(1, "b", DIGEST, when)[1].endswith("pushdate.2020.01-02-030405")


def test_index_namespaces_uses_the_given_prefix() -> None:
    assert index_namespaces(2, "b", DIGEST, 0, prefix="gecko.cache.v1")[0] == (
        "gecko.cache.v1.level-2.b.latest"
    )


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"level": 0}, "level 0"),
        ({"level": 4}, "level 4"),
        ({"level": True}, "level True"),
        ({"level": "3"}, "level '3'"),
        ({"name": "-x"}, "'-x'"),
        ({"name": "a..b"}, "'a..b'"),
        ({"name": "b."}, "'b.'"),
        ({"name": "a/b"}, "'a/b'"),
        ({"name": ""}, "''"),
        ({"digest": "ABC"}, "'ABC'"),
        ({"digest": DIGEST.upper()}, "digest"),
        ({"digest": DIGEST[:-1]}, "digest"),
        ({"pushdate": datetime.datetime(2016, 1, 1)}, "no timezone"),
        ({"pushdate": "2016"}, "push date '2016'"),
        ({"prefix": "a..b"}, "prefix 'a..b'"),
        ({"prefix": "a.b c"}, "prefix"),
    ],
)
def test_index_namespaces_rejects_invalid_values_naming_them(
    kwargs: dict[str, object], culprit: str
) -> None:
    args: dict[str, object] = {"level": 3, "name": "b", "digest": DIGEST, "pushdate": 0}
    args.update(kwargs)
    prefix = args.pop("prefix", "docker.images.v2")
    with pytest.raises(InvalidValueError) as info:
        index_namespaces(**args, prefix=prefix)  # type: ignore[arg-type]
    assert culprit in str(info.value)
    assert "\n" not in str(info.value)


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}(\.[A-Za-z0-9_-]{1,8}){0,2}", fullmatch=True)
digests = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
anything = st.one_of(st.text(max_size=70), st.integers(), st.none(), st.booleans())


@given(
    level=st.one_of(st.sampled_from([1, 2, 3]), anything),
    name=st.one_of(names, anything),
    digest=st.one_of(digests, anything),
    pushdate=st.integers(min_value=0, max_value=4_000_000_000),
)
def test_no_valid_input_yields_a_namespace_outside_its_level_and_name(
    level: object, name: object, digest: object, pushdate: int
) -> None:
    try:
        result = index_namespaces(level, name, digest, pushdate)  # type: ignore[arg-type]
    except InvalidValueError:
        return
    head = f"docker.images.v2.level-{level}.{name}."
    for namespace in result:
        assert namespace.startswith(head)
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", namespace)
        assert namespace.count(".") == head.count(".") + (
            2 if ".pushdate." in namespace else 1 if ".hash." in namespace else 0
        )


def test_search_order_for_level_1_is_levels_1_2_3() -> None:
    assert list(search_order("b", DIGEST, 1)) == [
        Candidate(1, hash_namespace(1, "b", DIGEST)),
        Candidate(2, hash_namespace(2, "b", DIGEST)),
        Candidate(3, hash_namespace(3, "b", DIGEST)),
    ]


def test_search_order_for_level_2_is_levels_2_3() -> None:
    assert [c.level for c in search_order("b", DIGEST, 2)] == [2, 3]


def test_search_order_for_level_3_is_level_3_only() -> None:
    assert list(search_order("b", DIGEST, 3)) == [Candidate(3, hash_namespace(3, "b", DIGEST))]


@given(level=st.sampled_from([1, 2, 3]), name=names, digest=digests)
def test_search_order_never_goes_below_the_push_level(level: int, name: str, digest: str) -> None:
    order = search_order(name, digest, level)
    assert [c.level for c in order] == list(range(level, 4))
    assert all(c.namespace == hash_namespace(c.level, name, digest) for c in order)


def test_search_order_rejects_invalid_level() -> None:
    with pytest.raises(InvalidValueError, match="level 0"):
        search_order("b", DIGEST, 0)
