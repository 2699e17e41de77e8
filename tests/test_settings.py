"""Service settings from the environment: what start-up refuses, in one line."""

import pytest
from click.testing import CliRunner

from recursum.service.cli.main import cli
from recursum.service.engine.errors import ConfigError
from recursum.service.settings import MIN_SECRET_LENGTH, settings_from_env

LONG = "x" * MIN_SECRET_LENGTH


def test_start_up_refuses_a_secret_shorter_than_32_characters_naming_the_key():
    with pytest.raises(ConfigError, match=r"'ops' has a secret of 5 characters; use at least 32"):
        settings_from_env({"RECURSUM_API_KEYS": f"app:{LONG}:summarize,ops:short:admin"})


def test_start_up_accepts_secrets_of_32_characters():
    (key,) = settings_from_env({"RECURSUM_API_KEYS": f"ops:{LONG}:admin"}).api_keys
    assert key.name == "ops" and LONG not in repr(key)


def test_serve_with_a_short_secret_says_so_in_one_line_and_exits_1():
    result = CliRunner().invoke(cli, ["serve"], env={"RECURSUM_API_KEYS": "ops:short:summarize"})
    assert result.exit_code == 1
    assert "use at least 32" in result.output and "Traceback" not in result.output


def test_an_api_key_name_given_twice_is_refused_at_start_up():
    secret = "s" * 32
    with pytest.raises(ConfigError, match="names 'alice' twice"):
        settings_from_env({"RECURSUM_API_KEYS": f"alice:{secret}:summarize,alice:{secret}x:evaluate"})


def test_callback_hosts_compare_lowercased_as_urls_carry_them():
    settings = settings_from_env({"RECURSUM_CALLBACK_HOSTS": "Hooks.Example.org"})
    assert settings.callback_targets().check_url("https://hooks.example.org/done").host == "hooks.example.org"
