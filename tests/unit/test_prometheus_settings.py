"""PROMETHEUS_BEARER_TOKEN_FILE and PROMETHEUS_HEADERS: read as meant, and a value the bot
could not send is refused at start in one line naming the variable and the bad part, never
a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig"


@pytest.fixture()
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def test_a_readable_token_file_is_kept(token_file: Path) -> None:
    settings = load_settings(prometheus_url="https://prometheus.example",
                             prometheus_bearer_token_file=f" {token_file} ")
    assert settings.prometheus_bearer_token_file == str(token_file)
    assert TOKEN not in repr(settings)


def test_a_token_file_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(SettingsError) as refused:
        load_settings(prometheus_bearer_token_file=str(missing))
    assert str(refused.value) == (
        "invalid configuration: PROMETHEUS_BEARER_TOKEN_FILE: the bearer token file "
        f"{missing} cannot be read (No such file or directory)")
    with pytest.raises(SettingsError, match=r"PROMETHEUS_BEARER_TOKEN_FILE: .*Is a directory"):
        load_settings(prometheus_bearer_token_file=str(tmp_path))


@pytest.mark.parametrize(("held", "said"), [
    ("\n", "is empty"),
    ("two words", "does not hold one token"),
    (f"{TOKEN}\r\nX-Injected: 1", "does not hold one token"),
])
def test_a_token_file_without_one_token_is_refused_never_quoted(
        tmp_path: Path, held: str, said: str) -> None:
    path = tmp_path / "token"
    path.write_text(held)
    with pytest.raises(SettingsError, match=rf"^invalid configuration: "
                       rf"PROMETHEUS_BEARER_TOKEN_FILE: the bearer token file {path} {said}"
                       ) as refused:
        load_settings(prometheus_bearer_token_file=str(path))
    assert TOKEN not in str(refused.value) and "words" not in str(refused.value)


def test_a_token_beside_credentials_in_the_url_is_refused(token_file: Path) -> None:
    """Which of the two the server would see is a surprise either way."""
    with pytest.raises(SettingsError) as refused:
        load_settings(prometheus_url="https://reader:pw@prometheus.example",
                      prometheus_bearer_token_file=str(token_file))
    assert str(refused.value) == (
        "invalid configuration: PROMETHEUS_BEARER_TOKEN_FILE: PROMETHEUS_URL carries "
        "credentials (user:password@) too: give either them or a bearer token file, not both")


def test_headers_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_HEADERS",
                       " X-Scope-OrgID = tenant-1|tenant-2 ,X-Other=a b,")
    settings = Settings()
    assert settings.prometheus_headers == {"X-Scope-OrgID": "tenant-1|tenant-2",
                                           "X-Other": "a b"}
    assert "tenant-1" not in repr(settings)
    monkeypatch.delenv("PROMETHEUS_HEADERS")
    assert load_settings().prometheus_headers == {}


@pytest.mark.parametrize(("value", "said"), [
    ("X-Scope-OrgID", "entry 1 is not Name=value (entries are separated by commas)"),
    ("X-A=1,Authorization: Bearer s3cret", "entry 2 is not Name=value"),
    ("X Scope=tenant-1", "'X Scope' is not a header name"),
    ("X-Scope:OrgID=tenant-1", "'X-Scope:OrgID' is not a header name"),
    ("=tenant-1", "'' is not a header name"),
    ("X-Scope-OrgID=", "the header X-Scope-OrgID needs a value of printable ASCII"),
    ("X-Scope-OrgID=tenant\r\nX-Injected: 1", "the header X-Scope-OrgID needs a value of "
     "printable ASCII characters (no line break or control character)"),
    ("X-Scope-OrgID=tenant\x00", "the header X-Scope-OrgID needs a value"),
    ("X-Scope-OrgID=ténant", "the header X-Scope-OrgID needs a value"),
    ("X-Scope-OrgID=a,x-scope-orgid=b", "the header x-scope-orgid is given twice"),
    ("authorization=Bearer s3cret", "the header authorization cannot be set here: "
     "credentials go in PROMETHEUS_BEARER_TOKEN_FILE or PROMETHEUS_URL"),
    ("Host=prometheus.example", "the header Host cannot be set here"),
    ("Content-Type=text/plain", "the header Content-Type cannot be set here"),
    ("Content-Length=0", "the header Content-Length cannot be set here"),
])
def test_a_header_the_bot_could_not_send_is_refused_naming_it(value: str, said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(prometheus_headers=value)
    message = str(refused.value)
    assert message.startswith("invalid configuration: PROMETHEUS_HEADERS: " + said), message
    assert "\n" not in message and "s3cret" not in message
