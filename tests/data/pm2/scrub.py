"""Scrub a recorded `pm2 jlist` (stdin) of this machine's own environment (stdout).

Keeps the shape and the sandbox's planted secrets (the redaction tests want them); drops every
variable the recording machine's shell contributed, and moves paths to a neutral root.
Usage: PM2_HOME=… pm2 jlist | python tests/data/pm2/scrub.py /tmp/hk-sb > tests/data/pm2/x.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

KEEP = {
    "HOME", "PATH", "PWD", "SHELL", "LANG", "TERM", "SHLVL", "_", "OLDPWD", "PM2_HOME",
    "PM2_USAGE", "DB_PASSWORD", "JWT_SECRET", "SMTP_PASS", "CF_TUNNEL_TOKEN", "OPENAI_API_KEY",
    "BACKEND_URL", "BACKEND_PORT", "DATABASE_URL", "NEXT_TELEMETRY_DISABLED", "NODE_ENV", "PORT",
    "FRONT_PORT", "OTLP_GRPC_PORT", "OTLP_HTTP_PORT", "unique_id",
}
NEUTRAL = {"HOME": "/home/ubuntu", "PATH": "/usr/local/bin:/usr/bin:/bin", "SHELL": "/bin/bash"}


def scrub_env(env: dict[str, Any], app_names: set[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in env.items():
        if key.isupper() or key in ("_", "unique_id"):
            if key not in KEEP:
                continue
            kept[key] = NEUTRAL.get(key, value)
        else:
            kept[key] = value
    return kept


def main() -> None:
    root = sys.argv[1]
    apps = json.load(sys.stdin)
    names = {a["name"] for a in apps}
    for app in apps:
        env = app["pm2_env"]
        app["pm2_env"] = scrub_env(env, names)
        app["pm2_env"]["env"] = scrub_env(env.get("env", {}), names)
    text = json.dumps(apps).replace(root, "/home/ubuntu/sandbox")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
