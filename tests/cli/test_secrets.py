"""One rule for secret names (opsctl/secrets.py), held to every option DVC's remotes define,
and seen where a user sees it: `opsctl data remote list` (.dvc/config and .dvc/config.local),
stage logs and the run store."""

from __future__ import annotations

import glob
import json
import secrets
from pathlib import Path

import pytest
from dvc.config_schema import REMOTE_SCHEMAS
from voluptuous import Invalid, Marker, Schema

from opsctl.secrets import looks_secret, mask_url
from tests.cli.test_run import make_project
from tests.conftest import git_dvc_project, opsctl_inprocess

# Every credential DVC's remotes take. Key ids are in: AWS asks for them to be kept private
# (the KMS key id goes with them by the same words, harmlessly).
SECRET_OPTIONS = {
    "password",
    "passphrase",
    "token",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "sse_customer_key",
    "sse_kms_key_id",
    "connection_string",
    "sas_token",
    "account_key",
    "client_secret",
    "oss_key_id",
    "oss_key_secret",
    "gdrive_client_secret",
}
# Everything else: where things are, who the user is, switches about credentials
# (ask_password, exclude_*_credential), and paths or commands that lead to them.
PLAIN_OPTIONS = {
    "url", "checksum_jobs", "jobs", "worktree", "no_traverse", "version_aware", "type", "protected", "shared",
    "slow_link_warning", "verify", "auth", "custom_auth_header", "user", "ask_password", "ssl_verify", "method",
    "connect_timeout", "read_timeout", "bearer_token_command", "cert_path", "key_path", "timeout", "region",
    "profile", "credentialpath", "configpath", "endpointurl", "listobjects", "use_ssl", "allow_anonymous_login",
    "sse", "sse_customer_algorithm", "acl", "grant_read", "grant_read_acp", "grant_write_acp", "grant_full_control",
    "cache_regions", "projectname", "port", "ask_passphrase", "keyfile", "gss_auth", "allow_agent", "max_sessions",
    "kerb_ticket", "replication", "kerberos", "kerberos_principal", "proxy_to", "use_https", "data_proxy_target",
    "account_name", "tenant_id", "client_id", "exclude_environment_credential",
    "exclude_visual_studio_code_credential", "exclude_shared_token_cache_credential",
    "exclude_managed_identity_credential", "connection_timeout", "oss_endpoint", "gdrive_use_service_account",
    "gdrive_client_id", "gdrive_user_credentials_file", "gdrive_service_account_user_email",
    "gdrive_service_account_json_file_path", "gdrive_trash_only", "gdrive_acknowledge_abuse",
}  # fmt: skip

URLS = {
    "s3": "s3://bucket/data",
    "gs": "gs://bucket/data",
    "ssh": "ssh://example.com/srv/data",
    "hdfs": "hdfs://example.com/data",
    "webhdfs": "webhdfs://example.com/data",
    "azure": "azure://container/data",
    "oss": "oss://bucket/data",
    "gdrive": "gdrive://root/data",
    "http": "http://example.com/data",
    "https": "https://example.com/data",
    "webdav": "webdav://example.com/data",
    "webdavs": "webdavs://example.com/data",
}


def remote_options() -> dict[str, dict[str, object]]:
    """{scheme: {option: validator}} for every remote type of DVC's config schema."""
    schemes = {}
    for scheme, options in REMOTE_SCHEMAS.items():
        if scheme in ("", "remote"):  # the local cache's options (no credentials), and "any of the above"
            continue
        schemes[scheme] = {(k.schema if isinstance(k, Marker) else k): v for k, v in options.items()}
    return schemes


def test_every_remote_type_of_dvc_is_covered():
    assert set(remote_options()) == set(URLS)


@pytest.mark.parametrize("scheme", sorted(URLS))
def test_each_dvc_remote_option_is_secret_or_not_by_the_one_rule(scheme):
    for option in remote_options()[scheme]:
        assert option in SECRET_OPTIONS | PLAIN_OPTIONS, f"{scheme}: classify DVC's new option {option!r}"
        assert looks_secret(option) == (option in SECRET_OPTIONS), f"{scheme}: {option}"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AZURE_STORAGE_CONNECTION_STRING", True),
        ("GITHUB_TOKEN", True),
        ("PGPASSWORD", True),
        ("MYSQL_PWD", True),
        ("apiKey", True),
        ("db.password", True),
        ("PWD", False),
        ("MAX_TOKENS", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("KEYBOARD_LAYOUT", False),
        ("DB_PASSWORD_FILE", False),
        ("train.max_token_length", False),
        ("SSH_AUTH_SOCK", False),
    ],
)
def test_environment_and_param_names(name, secret):
    assert looks_secret(name) is secret


def test_urls_lose_their_passwords_and_secret_query_values():
    assert mask_url("https://ana:s3cr3t@host.example/x") == "https://ana:***@host.example/x"
    assert mask_url("https://host.example:8080/x") == "https://host.example:8080/x"
    assert mask_url("ssh://git@host/x") == "ssh://git@host/x"
    assert (
        mask_url("https://a.blob.example/c?sv=2022&sig=abc%2B&se=1") == "https://a.blob.example/c?sv=2022&sig=***&se=1"
    )
    assert mask_url("error: could not reach postgres://u:pw1234@db:5432/x (timeout)") == (
        "error: could not reach postgres://u:***@db:5432/x (timeout)"
    )


def _valid_value(validator, unique: str) -> str | None:
    """A value DVC accepts in a config file for this option (None: no text is valid, e.g.
    s3's ``cache_regions: bool``, which only Python callers can set)."""
    if validator is str:
        return unique
    for candidate in ("true", "3", "basic", "group", "copy"):
        try:
            Schema(validator)(candidate)
        except (Invalid, ValueError, TypeError):
            continue
        return candidate
    return None


def test_remote_list_masks_every_credential_from_config_and_config_local(tmp_path):
    """Every option of every DVC remote type, as `dvc remote modify` writes it: credentials
    in .dvc/config.local (as `--local` puts them), the rest in .dvc/config."""
    root = git_dvc_project(tmp_path / "p", "p")
    shared, local = [], []
    secret_values, plain_values = [], []
    for scheme, options in remote_options().items():
        shared.append(f"['remote \"{scheme}-remote\"']\n    url = {URLS[scheme]}\n")
        local.append(f"['remote \"{scheme}-remote\"']\n")
        for option, validator in options.items():
            if option == "url":
                continue
            value = _valid_value(validator, f"{option}-{secrets.token_hex(6)}")
            if value is None:
                assert option not in SECRET_OPTIONS
                continue
            if option in SECRET_OPTIONS:
                local.append(f"    {option} = {value}\n")
                secret_values.append(value)
            else:
                shared[-1] += f"    {option} = {value}\n"
                if validator is str:
                    plain_values.append(value)
    # A remote only the user's own config knows, its password in the URL.
    local.append("['remote \"mine\"']\n    url = https://ana:pw-in-url-123@dav.example/store\n")
    (root / ".dvc" / "config").write_text("".join(shared))
    (root / ".dvc" / "config.local").write_text("".join(local))

    table = opsctl_inprocess("data", "remote", "list", cwd=root)
    as_json = opsctl_inprocess("data", "remote", "list", "--json", cwd=root)
    assert table.returncode == 0 and as_json.returncode == 0, table.stderr + as_json.stderr
    for value in [*secret_values, "pw-in-url-123"]:
        assert value not in table.stdout + table.stderr + as_json.stdout, value
    remotes = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert remotes["mine"]["url"] == "https://ana:***@dav.example/store"
    assert remotes["azure-remote"]["options"]["account_key"] == "***"
    assert remotes["azure-remote"]["options"]["sas_token"] == "***"
    assert remotes["azure-remote"]["options"]["connection_string"] == "***"
    assert remotes["s3-remote"]["options"]["secret_access_key"] == "***"
    assert remotes["ssh-remote"]["options"]["ask_password"] == "true"  # a switch, shown as written
    shown = json.dumps(remotes)
    for value in plain_values:
        assert value in shown, value
    assert "ssh-remote" in table.stdout and "mine" in table.stdout and "https://ana:***@dav.example" in table.stdout


def test_stage_logs_mask_by_the_same_rule(tmp_path):
    connection = "DefaultEndpointsProtocol=https;AccountKey=" + secrets.token_hex(16)
    password = "pw-" + secrets.token_hex(8)
    root = make_project(
        tmp_path / "p",
        {
            "talk": {
                "cmd": 'echo "conn $AZURE_STORAGE_CONNECTION_STRING"; echo "db $DATABASE_URL"; '
                'echo "parallel $TOKENIZERS_PARALLELISM"; echo done > talk.txt',
                "outs": ["talk.txt"],
            }
        },
    )
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": connection,
        "DATABASE_URL": f"postgres://ana:{password}@db.example:5432/app",
        "TOKENIZERS_PARALLELISM": "true",
    }
    result = opsctl_inprocess("run", "--executor", "local", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    assert connection not in result.stdout and password not in result.stdout
    assert "talk | conn ***" in result.stdout
    assert "talk | db postgres://ana:***@db.example:5432/app" in result.stdout
    assert "talk | parallel true" in result.stdout  # not a secret: its value is not hidden everywhere
    log = next((root / ".opsctl" / "runs").rglob("talk.log")).read_text()
    assert connection not in log and password not in log and "parallel true" in log


def test_params_with_secret_names_are_not_kept_in_the_run_store(tmp_path):
    password = "hunter-" + secrets.token_hex(8)
    root = make_project(
        tmp_path / "p",
        {"use": {"cmd": "echo using > used.txt", "params": ["db.password", "db.host"], "outs": ["used.txt"]}},
        params={"db": {"password": "placeholder", "host": "db.example"}},
    )
    result = opsctl_inprocess("run", "--executor", "local", "-S", f"db.password={password}", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    shown = opsctl_inprocess("runs", "show", run_id, "--json", cwd=root)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert password not in shown.stdout
    assert detail["params"]["db.password"] == "***" and detail["params"]["db.host"] == "db.example"
    for path in glob.glob(str(root / ".opsctl" / "opsctl.db*")):
        assert password.encode() not in Path(path).read_bytes(), path
