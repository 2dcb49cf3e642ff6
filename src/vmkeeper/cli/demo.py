"""`make demo`: bring the sandbox up and show the standard VM working, command by command.

Each step is a real `vmkeeper …` command run through the CLI, so what the demo prints is what
an operator would see.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.rule import Rule

from vmkeeper.cli.main import app
from vmkeeper.cli.main import main as vmkeeper
from vmkeeper.media.clips import Clip, Sound, make_clip
from vmkeeper.sandbox import service
from vmkeeper.sandbox.layout import DEFAULT_BASE_PORT, Layout
from vmkeeper.settings import Settings

console = Console(highlight=False)


def show(*argv: str) -> int:
    console.print(Rule(f"$ vmkeeper {shlex.join(argv)}", align="left", style="cyan"))
    code = vmkeeper(list(argv))
    console.print(f"[dim](exit {code})[/dim]\n")
    return code


def curl(url: str) -> None:
    console.print(Rule(f"$ curl -I {url}", align="left", style="cyan"))
    try:
        response = httpx.head(url, timeout=10)
        console.print(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
        server = response.headers.get("server")
        if server:
            console.print(f"Server: {server}")
    except httpx.HTTPError as error:
        console.print(f"[red]{error}[/red]")
    console.print()


def commands() -> set[str]:
    # Names only: the registry lists every command without importing its module.
    return set(getattr(typer.main.get_command(app), "commands", {}))


# The runbook's June 2026 incident as `journalctl -k` and systemd would have printed it:
# ffmpeg at 3.3 GiB RSS on a 3.8 GiB VM (996147 pages of 4 KiB), pm2-ubuntu failed with oom-kill.
JUNE_2026_INCIDENT = """\
Jun 12 03:14:15 vm kernel: ffmpeg invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0
Jun 12 03:14:15 vm kernel: CPU: 1 PID: 4242 Comm: ffmpeg Not tainted 6.8.0-1012-aws #13-Ubuntu
Jun 12 03:14:15 vm kernel: Mem-Info:
Jun 12 03:14:15 vm kernel: 996147 pages RAM
Jun 12 03:14:15 vm kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/pm2-ubuntu.service,task=ffmpeg,pid=4242,uid=1000
Jun 12 03:14:15 vm kernel: Out of memory: Killed process 4242 (ffmpeg) total-vm:4112344kB, anon-rss:3460300kB, file-rss:1024kB, shmem-rss:0kB, UID:1000 pgtables:7020kB oom_score_adj:0
Jun 12 03:14:15 vm systemd[1]: pm2-ubuntu.service: A process of this unit has been killed by the OOM killer.
Jun 12 03:14:16 vm systemd[1]: pm2-ubuntu.service: Failed with result 'oom-kill'.
"""


def sample_video(uploads: Path) -> Path:
    """A 4 s 320x240 clip with a beep every second, made with the bundled FFmpeg."""
    clip = uploads / "demo" / "clip.mp4"
    if not clip.exists():
        make_clip(clip, Clip(size="320x240", seconds=4, sound=Sound.BEEP))
    return clip


def webhook_deploy(layout: Layout, settings: Settings) -> None:
    """A push to the workspace's origin, told to the agent by a signed GitHub-style webhook;
    the deploy's steps and output lines printed live from its event stream."""
    import json

    from vmkeeper import proc
    from vmkeeper.agent import auth, hooks

    console.print(Rule("$ git push; POST /v1/hooks/git (signed) → the agent deploys", align="left",
                       style="cyan"))
    git = ["git", "-C", str(settings.workspace.path), "-c", "user.name=demo",
           "-c", "user.email=demo@localhost"]
    proc.run([*git, "commit", "-q", "--allow-empty", "-m", "demo push"], timeout=30)
    proc.run([*git, "push", "-q", "origin", "HEAD:main"], timeout=60)
    sha = proc.run([*git, "rev-parse", "HEAD"], timeout=30).stdout.strip()
    body = json.dumps({"ref": f"refs/heads/{settings.agent.branch}", "after": sha}).encode()
    base = f"http://127.0.0.1:{settings.agent.port}"
    answer = httpx.post(f"{base}/v1/hooks/git", content=body, timeout=30, headers={
        "X-Hub-Signature-256": hooks.signature(settings.agent.webhook_secret or "", body),
        "X-GitHub-Delivery": f"demo-{sha}", "content-type": "application/json"})
    console.print(f"HTTP {answer.status_code} {answer.text}")
    if answer.status_code != 202:
        return
    names = {t.name for t in auth.listing(settings.state_dir)}
    name = next(f"demo-{n}" for n in range(1000) if f"demo-{n}" not in names)
    token = auth.add(settings.state_dir, name, auth.Scope.READ).token
    url = f"{base}/v1/operations/{answer.json()['operation_id']}/events"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"},
                      timeout=900) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                text = _event_line(event)
                console.print(f"  [dim]event[/dim] {text}", markup=True, highlight=False)
    auth.revoke(settings.state_dir, name)
    console.print()


def _event_line(event: dict[str, Any]) -> str:
    """One operation event as a person reads it: a step's end with its seconds, else its words."""
    seconds = event.get("seconds")
    took = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
    if event.get("type") == "result":
        return f"result: {'ok' if event.get('ok') else 'failed'}{took}" + (
            f" — {event['error']}" if event.get("error") else "")
    if event.get("message"):
        return str(event["message"])
    return f"{event.get('step') or 'step'} {event.get('phase') or ''}{took}".rstrip()


def run(directory: Path, base_port: int) -> int:
    code = show("sandbox", "up", "--dir", str(directory), "--base-port", str(base_port))
    if code != 0:
        return code
    layout = Layout.at(directory, base_port)
    config = str(layout.config)
    settings = service.sandbox_settings(layout)
    curl(settings.public_url + "/")
    curl(f"http://127.0.0.1:{settings.apps.frontend.port}/")
    curl(f"http://127.0.0.1:{settings.apps.backend.port}/api/auth/me")
    available = commands()
    for argv in (["status"], ["health"], ["deploy"], ["releases"], ["rollback", "--previous"],
                 ["health"]):
        if argv[0] in available:
            show("--config", config, *argv)
    if "agent" in available:
        webhook_deploy(layout, settings)
    if "media" in available:
        clip = sample_video(settings.media.storage_root)
        show("--config", config, "media", "probe", str(clip))
        show("--config", config, "media", "reverse", str(clip),
             str(layout.dir / "clip-reversed.mp4"))
        show("--config", config, "media", "submit", "demo/clip.mp4", "--wait")
    if "redact" in available:
        show("redact", "--check", str(layout.pm2_home / "dump.pm2"))
    if "diagnose" in available:
        kernel_log = layout.dir / "june-2026-incident.log"
        kernel_log.write_text(JUNE_2026_INCIDENT)
        show("--config", config, "diagnose", "oom", "--file", str(kernel_log))
    console.print(Rule("next", align="left"))
    console.print(
        f"The sandbox runs in {layout.dir}. Try:\n"
        f"  export VMKEEPER_CONFIG={config}\n"
        "  .venv/bin/vmkeeper health\n"
        "  .venv/bin/vmkeeper deploy --dry-run\n"
        "  .venv/bin/vmkeeper releases\n"
        "  .venv/bin/vmkeeper logs backend-dev --lines 20\n"
        "  .venv/bin/vmkeeper bundle -o /tmp\n"
        f"  PM2_HOME={layout.pm2_home} {layout.pm2_bin} kill   # break it…\n"
        "  .venv/bin/vmkeeper health; .venv/bin/vmkeeper recover   # …and heal it\n"
        "Take it down with: make demo-down   "
        f"(or .venv/bin/vmkeeper sandbox down --dir {directory})"
    )
    return 0


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    args = parser.parse_args()
    sys.exit(run(args.dir, args.base_port))


if __name__ == "__main__":
    cli()
