"""Parsers of `pm2 jlist`, `systemctl show` and `ss -ltnp`, from recorded real output."""

from __future__ import annotations

from pathlib import Path

from vmkeeper.adapters import host, systemd
from vmkeeper.adapters.pm2 import parse_jlist

DATA = Path(__file__).parents[1] / "data"


def test_jlist_healthy_lists_four_online_apps_with_node_version_and_logs() -> None:
    apps = {a.name: a for a in parse_jlist((DATA / "pm2" / "jlist-healthy.json").read_text())}
    assert set(apps) == {"frontend-dev", "backend-dev", "fl-telemetry", "fl-executor"}
    assert all(a.online and a.pid for a in apps.values())
    frontend = apps["frontend-dev"]
    assert frontend.node_version == "20.20.2"
    assert frontend.out_log is not None and frontend.out_log.name == "frontend-dev-out.log"
    assert frontend.args == ("run", "start")
    assert frontend.cwd is not None and "releases" in str(frontend.cwd)


def test_jlist_stopped_app_has_no_pid_and_status_stopped() -> None:
    apps = {a.name: a for a in
            parse_jlist((DATA / "pm2" / "jlist-executor-stopped.json").read_text())}
    assert apps["fl-executor"].status == "stopped"
    assert apps["fl-executor"].pid is None
    assert apps["backend-dev"].online


def test_recorded_jlist_carries_none_of_the_recording_machines_env() -> None:
    text = (DATA / "pm2" / "jlist-healthy.json").read_text()
    assert "CA_BUNDLE" not in text and "/tmp/hk-sb" not in text


def test_show_of_a_running_forking_unit_reads_active() -> None:
    state = systemd.unit_state("ddclient", (DATA / "systemd" / "ddclient-forking-active.show")
                               .read_text())
    assert state.active_state is None  # not asked for in that dump; Result still tells
    assert state.result == "success" and state.main_pid == 473 and state.restarts == 0
    assert state.properties["ExecStart"].startswith("{ path=/usr/bin/ddclient")


def test_show_of_a_unit_that_failed_after_restarts_reads_failed() -> None:
    state = systemd.unit_state("ssh", (DATA / "systemd" / "ssh-exit-code-restarts.show")
                               .read_text())
    assert state.failed and state.restarts == 5 and state.main_pid is None


def test_show_start_limit_hit_and_oom_kill_are_named() -> None:
    limit = systemd.unit_state("x", (DATA / "systemd" / "start-limit-hit.show").read_text())
    assert limit.start_limit_hit and limit.failed and not limit.active
    oom = systemd.unit_state("pm2-ubuntu", (DATA / "systemd" / "pm2-ubuntu-oom-kill.show")
                             .read_text())
    assert oom.oom_killed and oom.active_state == "failed" and oom.exec_main_status == 9
    assert oom.unit == "pm2-ubuntu.service"


def test_show_reads_only_the_first_unit_when_several_are_printed() -> None:
    text = "Id=a.service\nActiveState=active\n\nId=b.service\nActiveState=failed\n"
    assert systemd.parse_show(text) == {"Id": "a.service", "ActiveState": "active"}


def test_systemctl_argv_builders_name_the_service_unit() -> None:
    assert systemd.reset_failed_argv("systemctl", "pm2-ubuntu") == [
        "systemctl", "reset-failed", "pm2-ubuntu.service"]
    assert systemd.restart_argv("sc", "pm2-ubuntu.service") == ["sc", "restart",
                                                                "pm2-ubuntu.service"]
    argv = systemd.show_argv("systemctl", "pm2-ubuntu")
    assert argv[:3] == ["systemctl", "show", "pm2-ubuntu.service"] and "Result" in argv


def test_ss_output_gives_port_pid_and_process() -> None:
    found = {item.port: item for item in
             host.parse_ss((DATA / "ss" / "ss-ltnp-sandbox.txt").read_text())}
    proxy = found[22080]
    assert proxy.process == "apache2" and proxy.pid == 12761 and proxy.address == "127.0.0.1"
    assert found[25000].process == "node"


def test_ss_lines_without_users_and_ipv6_addresses_parse() -> None:
    text = ("LISTEN 0 128 0.0.0.0:2024 0.0.0.0:*\n"
            "LISTEN 0 511 [::]:80 [::]:* users:((\"apache2\",pid=9,fd=4))\n")
    items = host.parse_ss(text)
    assert (items[0].port, items[0].pid) == (2024, None)
    assert (items[1].address, items[1].port, items[1].pid) == ("::", 80, 9)


def test_fs_usage_of_a_missing_path_uses_its_nearest_existing_parent(tmp_path: Path) -> None:
    usage = host.fs_usage(tmp_path / "not" / "yet")
    assert usage.bytes_total > 0 and 0 <= usage.used_pct <= 100
