"""The Taskcluster environment: which root URL and credentials each client gets."""

from __future__ import annotations

from typing import Any

import pytest
import taskcluster
import taskcluster_urls
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images.errors import ConfigError
from taskgraph_images.tc.env import Credentials, TaskclusterEnv, artifact_url, normalize_root_url

_VARIABLES = ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL", "TASKCLUSTER_CLIENT_ID",
              "TASKCLUSTER_ACCESS_TOKEN", "TASKCLUSTER_CERTIFICATE")
_TASK = "fN1qC0gXRb2-6q3tXv2cAw"
_ME = Credentials("me", "secret-token")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment with no Taskcluster variable; set some with ``setenv``."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- reading the environment ----------------------------------------------------------------


def test_no_variables_name_no_deployment(environment: pytest.MonkeyPatch) -> None:
    env = TaskclusterEnv.from_environment()
    assert env == TaskclusterEnv() and not env.configured and env.root() is None


def test_the_root_url_and_credentials_are_what_the_client_reads(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("TASKCLUSTER_ROOT_URL", "https://tc.example.com/")
    environment.setenv("TASKCLUSTER_CLIENT_ID", "me")
    environment.setenv("TASKCLUSTER_ACCESS_TOKEN", "secret-token")
    environment.setenv("TASKCLUSTER_CERTIFICATE", '{"version": 1}')
    env = TaskclusterEnv.from_environment()
    client = taskcluster.optionsFromEnvironment()
    assert env.root_url == client["rootUrl"] == "https://tc.example.com"
    assert env.credentials == Credentials("me", "secret-token", '{"version": 1}')
    assert env.credentials.to_options() == client["credentials"]
    assert env.proxy_url is None and env.configured


def test_inside_a_task_the_proxy_is_the_root_url(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TASKCLUSTER_ROOT_URL", "https://tc.example.com")
    environment.setenv("TASKCLUSTER_PROXY_URL", "http://taskcluster/")
    env = TaskclusterEnv.from_environment()
    assert env.proxy_url == "http://taskcluster" and env.root() == "http://taskcluster"


def test_the_proxy_alone_names_a_deployment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TASKCLUSTER_PROXY_URL", "http://taskcluster")
    assert TaskclusterEnv.from_environment().configured


@pytest.mark.parametrize("given_name, missing", [
    ("TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN"),
    ("TASKCLUSTER_ACCESS_TOKEN", "TASKCLUSTER_CLIENT_ID"),
])
def test_half_a_pair_of_credentials_is_refused(
    environment: pytest.MonkeyPatch, given_name: str, missing: str
) -> None:
    environment.setenv("TASKCLUSTER_ROOT_URL", "https://tc.example.com")
    environment.setenv(given_name, "x")
    with pytest.raises(ConfigError, match=f"{given_name} is set but {missing} is not"):
        TaskclusterEnv.from_environment()


def test_credentials_repr_hides_the_secret() -> None:
    assert "secret-token" not in repr(_ME) and "me" in repr(_ME)


# -- which root URL and credentials a client gets -----------------------------------------


def test_a_named_root_url_wins_over_the_proxy_and_the_environment() -> None:
    env = TaskclusterEnv(root_url="https://a.example.com", proxy_url="http://taskcluster")
    assert env.root("https://b.example.com/") == "https://b.example.com"


def test_without_a_proxy_the_environments_root_url_is_used() -> None:
    assert TaskclusterEnv(root_url="https://a.example.com").root() == "https://a.example.com"


def test_credentials_sign_for_the_deployment_but_not_through_the_proxy() -> None:
    env = TaskclusterEnv(root_url="https://tc.example.com", proxy_url="http://taskcluster",
                         credentials=_ME)
    assert env.options("https://tc.example.com")["credentials"] == {
        "clientId": "me", "accessToken": "secret-token"}
    assert "credentials" not in env.options("http://taskcluster")


def test_extra_options_are_passed_on_and_the_root_url_is_normalized() -> None:
    options = TaskclusterEnv().options("https://tc.example.com///", maxRetries=3)
    assert options == {"rootUrl": "https://tc.example.com", "maxRetries": 3}


@given(st.sampled_from(["https://tc.example.com", "http://taskcluster", "http://127.0.0.1:9"]),
       st.integers(0, 3))
def test_normalize_root_url_is_the_clients(root: str, slashes: int) -> None:
    url = root + "/" * slashes
    assert normalize_root_url(url) == taskcluster_urls.normalize_root_url(url) == root


# -- artifact URLs, built by the client ----------------------------------------------------


def _queue_url(root: str, artifact: str) -> str:
    path = f"task/{_TASK}/artifacts/{artifact.replace('/', '%2F')}"
    return str(taskcluster_urls.api(root, "queue", "v1", path))


def test_public_artifact_url_is_plain_even_with_credentials() -> None:
    options = TaskclusterEnv(credentials=_ME).options("https://tc.example.com/")
    url = artifact_url(options, _TASK, "public/image.tar.zst")
    assert url == _queue_url("https://tc.example.com", "public/image.tar.zst")


def test_private_artifact_url_is_signed_with_the_credentials() -> None:
    options = TaskclusterEnv(credentials=_ME).options("https://tc.example.com")
    url = artifact_url(options, _TASK, "private/image.tar.zst")
    assert url.startswith(_queue_url("https://tc.example.com", "private/image.tar.zst") + "?")
    assert "bewit=" in url and "secret-token" not in url


def test_private_artifact_url_through_the_proxy_is_plain() -> None:
    env = TaskclusterEnv(proxy_url="http://taskcluster", credentials=_ME)
    url = artifact_url(env.options("http://taskcluster"), _TASK, "private/image.tar.zst")
    assert url == _queue_url("http://taskcluster", "private/image.tar.zst")


def test_private_artifact_url_without_credentials_is_plain() -> None:
    url = artifact_url(TaskclusterEnv().options("https://tc.example.com"), _TASK,
                       "private/image.tar.zst")
    assert url == _queue_url("https://tc.example.com", "private/image.tar.zst")


def test_certificate_is_passed_to_the_client() -> None:
    options: dict[str, Any] = TaskclusterEnv(credentials=Credentials("me", "t", "{}")).options(
        "https://tc.example.com")
    assert options["credentials"] == {"clientId": "me", "accessToken": "t", "certificate": "{}"}
