"""Real mail programs that call ``sendmail``: git send-email and s-nail, through ``smtp-sansio send``.

Each program runs as a real process with ``smtp-sansio send`` as its sendmail, which submits to an
aiosmtpd server on loopback; the test checks what the server received.  Without the program the
test is skipped, except on CI (``CI=true``), where .ci/run installs it (Debian's ``git-email`` and
``s-nail`` packages) and its absence is a failure.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from servers import LOOPBACK


def require(found: bool, what: str) -> None:
    if found:
        return
    reason = f"{what} is not installed (Debian: apt-get install git-email libmailtools-perl s-nail)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def sendmail_command(port: int) -> str:
    # The sendmail the programs run: this Python's smtp-sansio command line.
    return " ".join(shlex.quote(part) for part in [
        sys.executable, "-m", "smtp_sansio.adapters.cli", "send", "--host", LOOPBACK, "--port", str(port),
        "--tls", "none", "--local-domain", "c.test",
    ])


def clean_environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MAIL"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C", TZ="UTC")
    return env


def git_send_email_available() -> bool:
    git = shutil.which("git")
    if git is None:
        return False
    found = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=False)
    exec_path = found.stdout.strip()
    return bool(exec_path) and os.path.exists(os.path.join(exec_path, "git-send-email"))


def test_git_send_email_patch_series(tmp_path, smtpd_factory):
    require(git_send_email_available(), "git send-email")
    server = smtpd_factory()
    env = clean_environment(tmp_path)
    repo = tmp_path / "repo"

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    repo.mkdir()
    git("init", "-q", "-b", "main")
    git("config", "user.name", "Alice Example")
    git("config", "user.email", "alice@example.org")
    for n in range(4):
        (repo / "file.txt").write_text("".join(f"line {i}\n" for i in range(n + 1)))
        git("add", "file.txt")
        body = f"Body of change {n}.\n.\nA line with a lone dot above."
        git("commit", "-q", "-m", f"change number {n}\n\n{body}")
    patches = git("format-patch", "-3", "-o", str(tmp_path / "patches")).split()
    assert len(patches) == 3

    done = subprocess.run(
        ["git", "-C", str(repo), "send-email", "--confirm=never", "--suppress-cc=all", "--no-thread",
         "--from=Alice Example <alice@example.org>", "--envelope-sender=alice@example.org",
         "--to=bob@example.org", "--cc=carol@example.org", f"--sendmail-cmd={sendmail_command(server.port)}",
         *patches],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    assert len(server.messages) == 3
    for n, received in enumerate(server.messages, 1):
        assert received.mail_from == "alice@example.org"
        assert sorted(received.rcpt_tos) == ["bob@example.org", "carol@example.org"]
        message = message_from_bytes(received.content, policy=default_policy)
        assert message["Subject"] == f"[PATCH {n}/3] change number {n}"
        assert message["To"] == "bob@example.org"
        body = message.get_body().get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
        assert f"Body of change {n}.\n.\nA line with a lone dot above." in body
        assert f"+line {n}\n" in body
        # Exactly what git wrote, with the lone dot intact.
        patch = Path(patches[n - 1]).read_bytes().replace(b"\n", b"\r\n")
        patch_body = patch.split(b"\r\n\r\n", 1)[1]
        assert received.content.replace(b"\r\n", b"\n").endswith(patch_body.replace(b"\r\n", b"\n"))


def test_s_nail_sends_through_smtp_sansio(tmp_path, smtpd_factory):
    s_nail = shutil.which("s-nail")
    require(s_nail is not None, "s-nail")
    assert s_nail is not None
    server = smtpd_factory()
    script = tmp_path / "sendmail"
    script.write_text(f"#!/bin/sh\nexec {sendmail_command(server.port)} \"$@\"\n")
    script.chmod(0o700)
    done = subprocess.run(
        [s_nail, "-:/", "-S", f"mta={script}", "-S", "from=Alice <alice@example.org>",
         "-S", "sendwait", "-s", "Hello from s-nail", "-c", "carol@example.org",
         "-b", "dave@example.org", "bob@example.org"],
        input=b"The body.\n.\nAfter a lone dot.\n", env=clean_environment(tmp_path), capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [received] = server.messages
    assert received.mail_from == "alice@example.org"
    assert sorted(received.rcpt_tos) == ["bob@example.org", "carol@example.org", "dave@example.org"]
    message = message_from_bytes(received.content, policy=default_policy)
    assert message["Subject"] == "Hello from s-nail"
    assert message["Bcc"] is None  # never transmitted
    body = message.get_body().get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "The body.\n.\nAfter a lone dot.\n" in body
