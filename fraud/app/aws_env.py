"""Stack outputs of the Pulumi program in `infra/` turned into the `FRAUD_*` settings of aws mode.

    fraud aws-env --stack dev            # runs `pulumi stack output --json --stack dev` in infra/
    fraud aws-env --outputs outputs.json # a saved copy of that JSON

prints `FRAUD_NAME=value` lines (`--export` prefixes them with `export `) for a `.env` file or a shell. The
outputs hold names and ARNs only: secret values stay in Secrets Manager and are read at run time."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from fraud.core.settings import REPO_ROOT, Settings

# stack output -> settings field (fraud/core/settings.py); every one of these outputs must be present
OUTPUT_SETTINGS: dict[str, str] = {
    "region": "aws_region",
    "raw_bucket": "raw_bucket",
    "processed_bucket": "processed_bucket",
    "models_bucket": "models_bucket",
    "reports_bucket": "reports_bucket",
    "glue_job_name": "glue_job_name",
    "generator_function_name": "generator_function_name",
    "scorer_function_name": "scorer_function_name",
    "scorer_function_url": "scorer_function_url",
    "db_endpoint": "db_host",
    "db_port": "db_port",
    "db_name": "db_name",
    "db_secret_arn": "db_secret_arn",
    "card_token_key_secret_arn": "card_token_key_secret_arn",
    "review_key_secret_arn": "review_key_secret_arn",
    "sender_email": "mail_from",
}


class StackOutputsError(ValueError):
    pass


def env_name(field: str) -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def settings_from_outputs(outputs: dict) -> dict[str, str]:
    """`FRAUD_*` name -> value, for `FRAUD_MODE=aws` and every mapped output."""
    missing = sorted(k for k in OUTPUT_SETTINGS if outputs.get(k) in (None, ""))
    if missing:
        raise StackOutputsError(
            f"stack outputs missing: {', '.join(missing)} (is this the infra/ stack, after `pulumi up`?)"
        )
    settings = {env_name("mode"): "aws"}
    for output, field in OUTPUT_SETTINGS.items():
        value = outputs[output]
        if not isinstance(value, (str, int)) or str(value) == "[secret]":
            raise StackOutputsError(f"stack output {output} is not a plain name or ARN")
        settings[env_name(field)] = str(value)
    return settings


def settings_lines(outputs: dict, export: bool = False) -> list[str]:
    """`NAME=value` lines as env files want them (Docker's --env-file takes quotes literally), or shell-quoted
    `export NAME=value` lines (RDS secret ARNs hold a `!`)."""
    settings = settings_from_outputs(outputs)
    if export:
        return [f"export {name}={shlex.quote(value)}" for name, value in settings.items()]
    for name, value in settings.items():
        if not value.isprintable() or value != value.strip():
            raise StackOutputsError(f"{name} has whitespace or control characters; use --export")
    return [f"{name}={value}" for name, value in settings.items()]


def read_outputs_file(path: Path) -> dict:
    try:
        outputs = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StackOutputsError(f"cannot read stack outputs from {path}: {error}") from None
    if not isinstance(outputs, dict):
        raise StackOutputsError(f"{path} is not a JSON object of stack outputs")
    return outputs


def read_stack_outputs(stack: str, program_dir: Path = REPO_ROOT / "infra") -> dict:
    """`pulumi stack output --json` of one stack (no --show-secrets: secret outputs would stay masked)."""
    try:
        result = subprocess.run(
            ["pulumi", "stack", "output", "--json", "--stack", stack],
            cwd=program_dir,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise StackOutputsError(
            "the pulumi CLI is not on PATH; save `pulumi stack output --json` elsewhere and pass it with --outputs FILE"
        ) from None
    if result.returncode != 0:
        raise StackOutputsError(f"pulumi stack output failed: {result.stderr.strip()}")
    return json.loads(result.stdout)
