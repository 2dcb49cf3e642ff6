"""Can Apache's user read what the switch hands it? Judged from mode bits for another user
(www-data cannot enter Ubuntu's 0750 home folders), and found from Apache's own config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apache_dirs import apache_reachable
from vmkeeper import access
from vmkeeper.adapters import apache
from vmkeeper.health.doctor import apache_reads_check
from vmkeeper.health.model import Status
from vmkeeper.settings import Settings

STRANGER = access.Identity("www-data", 12345, frozenset({12345}))


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    # pytest's own folders are 0700 (/tmp/pytest-of-root): nobody but us could enter them,
    # which is the very thing these tests must control.
    with apache_reachable("vmkeeper-reads-") as folder:
        yield folder


def test_a_0750_folder_above_blocks_another_user_and_names_the_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "releases").mkdir(parents=True)
    asset = home / "releases" / "chunk.js"
    asset.write_text("x")
    home.chmod(0o750)
    why = access.blocked(asset, STRANGER)
    assert why is not None and f"cannot enter {home}" in why and "drwxr-x---" in why
    home.chmod(0o751)  # enter, not list: enough to reach a known path
    assert access.blocked(asset, STRANGER) is None
    asset.chmod(0o640)
    assert "cannot read" in (access.blocked(asset, STRANGER) or "")
    member = access.Identity("www-data", 12345, frozenset({12345, asset.stat().st_gid}))
    assert access.blocked(asset, member) is None  # the group's read bit lets a member in
    assert access.blocked(asset, access.Identity("root", 0, frozenset({0}))) is None
    assert "No such file" in (access.blocked(tmp_path / "gone", STRANGER) or "")


def test_apache_s_user_comes_from_user_or_debian_s_envvars(tmp_path: Path) -> None:
    config = tmp_path / "apache2.conf"
    config.write_text("ServerRoot /etc/apache2\nUser ${APACHE_RUN_USER}\n")
    (tmp_path / "envvars").write_text("export APACHE_RUN_USER=www-data\n"
                                      "export APACHE_RUN_GROUP=www-data\n")
    assert apache.run_user(config) == "www-data"
    config.write_text("User apache\n")
    assert apache.run_user(config) == "apache"
    config.write_text("Listen 8080\n")
    assert apache.run_user(config) is None  # runs as whoever starts it


def _settings(tmp_path: Path, user: str) -> Settings:
    home = tmp_path / "home"
    static = home / "releases" / "20260101T000000Z-abcdef1" / "frontend" / "build" / "static"
    (static / "chunks").mkdir(parents=True)
    (static / "chunks" / "main.js").write_text("x")
    include = tmp_path / "etc" / "vmkeeper-frontend.conf"
    include.parent.mkdir()
    include.write_text("# include\n")
    apache.map_path(include).write_text("port 3001\n")
    config = tmp_path / "etc" / "apache2.conf"
    config.write_text(f'User {user}\nIncludeOptional "{include}"\n')
    return Settings.model_validate({"releases": {"root": str(home / "releases")},
                                    "proxy": {"config": str(config),
                                              "frontend_include": str(include)}})


def test_doctor_says_apache_cannot_reach_static_files_behind_a_0750_home(tmp_path: Path
                                                                         ) -> None:
    settings = _settings(tmp_path, "nobody")
    (tmp_path / "home").chmod(0o750)
    check = apache_reads_check(settings)
    assert check.status is Status.CRITICAL, check
    assert f"nobody cannot enter {tmp_path / 'home'}" in check.summary
    assert "chmod o+x" in check.summary and len(check.details["blocked"]) >= 2
    (tmp_path / "home").chmod(0o755)
    check = apache_reads_check(settings)
    assert check.status is Status.OK and "2 static path(s)" in check.summary, check


def test_doctor_names_an_apache_user_that_does_not_exist(tmp_path: Path) -> None:
    check = apache_reads_check(_settings(tmp_path, "no-such-user-here"))
    assert check.status is Status.WARN and "no-such-user-here" in check.summary
