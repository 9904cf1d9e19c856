"""No secrets in the repository: a pattern scan of every file git tracks (and untracked files it would add) for
cloud keys, private keys, tokens and passwords written into URLs or assignments. The allowlist names the
test fixtures' made-up values one by one; the scanner is itself tested on planted secrets of each kind."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.figures import figure

REPO = Path(__file__).resolve().parents[2]

PATTERNS: dict[str, re.Pattern[str]] = {
    "aws_access_key_id": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    "aws_secret_access_key": re.compile(
        r"(?i)aws.{0,20}secret.{0,20}?['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
    ),
    "private_key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "password_in_url": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"<>]+:([^\s/@'\"<>{}$%]+)@[\w.-]+"),
    "github_token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b"),
    "slack_token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "stripe_or_sendgrid_key": re.compile(r"\b(?:sk_live_[A-Za-z0-9]{20,}|SG\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,})"),
    "assigned_secret": re.compile(
        r"(?i)(?<![a-z])(?:api[_-]?key|secret(?:[_-]?key)?|token|password|passwd)['\"]?\s*[:=]\s*"
        r"(?:SecretStr\()?['\"]([^'\"\s]{12,})['\"]"
    ),
}

# made-up values the tests use as fixtures: (path, value)
ALLOWED: set[tuple[str, str]] = {
    ("tests/serving/test_api.py", "api-test-token-not-a-secret"),
    ("tests/reliability/test_scorer_faults.py", "faults-test-token"),
    (
        "tests/infra/test_program.py",
        "arn:aws:secretsmanager:{region}:{account}:secret:{physical}-AbCdEf",
    ),  # Pulumi mock
}

SKIPPED_SUFFIXES = {".png", ".jpg", ".gif", ".ico", ".parquet", ".gz", ".zip", ".whl", ".pdf", ".tflite", ".keras"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    value: str


def scan_text(path: str, text: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), 1):
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(line):
                value = match.group(match.lastindex or 0)
                if (path, value) not in ALLOWED:
                    findings.append(Finding(path, number, kind, value))
    return findings


def repository_files(repo: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted({p for p in listed if Path(p).suffix.lower() not in SKIPPED_SUFFIXES and (repo / p).is_file()})


def scan_repository(repo: Path) -> list[Finding]:
    return [
        finding
        for path in repository_files(repo)
        for finding in scan_text(path, (repo / path).read_bytes().decode("utf-8", errors="ignore"))
    ]


def test_no_secrets_in_the_repository():
    files = repository_files(REPO)
    findings = scan_repository(REPO)
    assert findings == [], "\n".join(f"{f.path}:{f.line}: {f.kind}" for f in findings)  # never print the value
    figure(
        "tests/security/test_secrets.py::test_no_secrets_in_the_repository",
        f"{len(files):,} files scanned, {len(PATTERNS)} patterns, 0 findings "
        f"({len(ALLOWED)} allowlisted fixture values)",
    )


def test_the_scanner_finds_each_kind_of_secret():
    # built at run time, so this file itself holds none of them
    planted = {
        "aws_access_key_id": "AKIA" + "Q7WERTYUIOPASDF2",
        "aws_secret_access_key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
        "private_key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "password_in_url": "postgresql://fraud:" + "hunter2hunter2" + "@db.internal:5432/fraud",
        "github_token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "slack_token": "xoxb-" + "123456789012-abcdefghijkl",
        "stripe_or_sendgrid_key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "assigned_secret": 'api_key = "' + "Zr8s9Tq2Lm4Vb6Nc" + '"',
    }
    for kind, text in planted.items():
        assert kind in {f.kind for f in scan_text("planted.py", f"x = 1\n{text}\n")}, kind
    # templates and placeholders are not secrets
    for harmless in (
        "postgresql://{user}:{password}@{host}/fraud",
        "url = f'postgresql://{user}:${PASSWORD}@db'",
        "token = settings.api_token.get_secret_value()",
        "password: str | None = None",
    ):
        assert scan_text("harmless.py", harmless) == [], harmless
