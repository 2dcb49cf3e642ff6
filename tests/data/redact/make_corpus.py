"""Build the redaction corpus: planted secrets (`secrets.jsonl`) and near-miss plain values
(`plain.jsonl`), each record naming the shape and where the shape comes from.

    python tests/data/redact/make_corpus.py     # rewrites both files (seeded: same output)

Token formats are facts published by secret scanners (gitleaks' rule list, config/gitleaks.toml)
and by the providers; document shapes come from real PM2 output: tests/data/pm2/jlist-*.json
(recorded from PM2 in the sandbox), the banner PM2 prints before `jlist` when it spawns its
daemon (Unitech/pm2 issues #281 and #627), env values holding JSON (Unitech/pm2 #4080), and the
runbook (shared/seed/deployment-vm.md). Every value here is random: none is a real credential.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
JLIST = HERE.parent / "pm2" / "jlist-healthy.json"
GITLEAKS = "gitleaks config/gitleaks.toml rule "
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"
rng = random.Random(20260612)


def tok(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def pw() -> str:
    """A password as people make them: letters, digits and a symbol or two."""
    return tok(ALNUM, rng.randint(6, 10)) + rng.choice("!%^*+-_.~") + tok(ALNUM, rng.randint(3, 6))


def let(value: object, body: Callable[[object], object]) -> object:
    return body(value)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def jwt() -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(
        json.dumps({"sub": tok(HEX, 8), "iat": rng.randint(1.6e9, 1.8e9)}).encode()).decode()
    return f"{head}.{body.rstrip('=')}.{tok(URLSAFE, 43)}"


def pem(kind: str = "RSA PRIVATE KEY", end: str | None = None, lines: int = 4) -> str:
    body = "\n".join(tok(B64, 64) for _ in range(lines))
    closing = f"\n-----END {end or kind}-----" if end != "" else ""
    return f"-----BEGIN {kind}-----\n{body}{closing}"


# shape, source, factory -> (the secret text to plant, the part that must vanish)
Factory = Callable[[], tuple[str, str]]


def same(make: Callable[[], str]) -> Factory:
    def factory() -> tuple[str, str]:
        value = make()
        return value, value
    return factory


PROVIDERS: list[tuple[str, str, Factory]] = [
    ("github-pat", GITLEAKS + "github-pat", same(lambda: "ghp_" + tok(ALNUM, 36))),
    ("github-oauth", GITLEAKS + "github-oauth", same(lambda: "gho_" + tok(ALNUM, 36))),
    ("github-app", GITLEAKS + "github-app-token", same(lambda: "ghs_" + tok(ALNUM, 36))),
    ("github-refresh", GITLEAKS + "github-refresh-token", same(lambda: "ghr_" + tok(ALNUM, 36))),
    ("github-fine-grained", GITLEAKS + "github-fine-grained-pat",
     same(lambda: "github_pat_" + tok(ALNUM, 22) + "_" + tok(ALNUM, 59))),
    ("gitlab-pat", GITLEAKS + "gitlab-pat", same(lambda: "glpat-" + tok(URLSAFE, 20))),
    ("gitlab-deploy", GITLEAKS + "gitlab-deploy-token", same(lambda: "gldt-" + tok(URLSAFE, 20))),
    ("gitlab-runner", GITLEAKS + "gitlab-runner-authentication-token",
     same(lambda: "glrt-" + tok(URLSAFE, 20))),
    ("gitlab-rrt", GITLEAKS + "gitlab-rrt", same(lambda: "GR1348941" + tok(URLSAFE, 20))),
    ("slack-bot", GITLEAKS + "slack-bot-token",
     same(lambda: f"xoxb-{tok('0123456789', 12)}-{tok('0123456789', 13)}-{tok(ALNUM, 24)}")),
    ("slack-user", GITLEAKS + "slack-user-token",
     same(lambda: f"xoxp-{tok('0123456789', 12)}-{tok('0123456789', 12)}-"
                  f"{tok('0123456789', 12)}-{tok(HEX, 32)}")),
    ("slack-app", GITLEAKS + "slack-app-token",
     same(lambda: f"xapp-1-A{tok(ALNUM.upper(), 10)}-{tok('0123456789', 13)}-{tok(HEX, 64)}")),
    ("slack-webhook", GITLEAKS + "slack-webhook-url",
     same(lambda: f"https://hooks.slack.com/services/T{tok(ALNUM.upper(), 8)}/B{tok(ALNUM.upper(), 10)}/{tok(ALNUM, 24)}")),
    ("discord-webhook", "Discord developer docs: webhook URL /api/webhooks/{id}/{token}",
     same(lambda: f"https://discord.com/api/webhooks/{tok('0123456789', 18)}/{tok(URLSAFE, 68)}")),
    ("discord-webhook-legacy", "discordapp.com webhook URL form",
     same(lambda: f"https://discordapp.com/api/webhooks/{tok('0123456789', 18)}/{tok(URLSAFE, 68)}")),
    ("discord-bot", "detect-secrets DiscordBotTokenDetector format",
     same(lambda: "M" + tok(ALNUM, 23) + "." + tok(URLSAFE, 6) + "." + tok(URLSAFE, 27))),
    ("stripe-live", GITLEAKS + "stripe-access-token", same(lambda: "sk_live_" + tok(ALNUM, 24))),
    ("stripe-test", GITLEAKS + "stripe-access-token", same(lambda: "sk_test_" + tok(ALNUM, 24))),
    ("stripe-restricted", GITLEAKS + "stripe-access-token", same(lambda: "rk_live_" + tok(ALNUM, 24))),
    ("stripe-webhook", "Stripe docs: webhook signing secret whsec_", same(lambda: "whsec_" + tok(ALNUM, 32))),
    ("aws-access-key", GITLEAKS + "aws-access-token",
     same(lambda: "AKIA" + tok(string.ascii_uppercase + "234567", 16))),
    ("aws-sts-key", GITLEAKS + "aws-access-token",
     same(lambda: "ASIA" + tok(string.ascii_uppercase + "234567", 16))),
    ("gcp-api-key", GITLEAKS + "gcp-api-key", same(lambda: "AIza" + tok(URLSAFE, 35))),
    ("google-oauth-secret", "Google OAuth client secret prefix GOCSPX-", same(lambda: "GOCSPX-" + tok(URLSAFE, 28))),
    ("google-access-token", "Google OAuth access token prefix ya29.", same(lambda: "ya29." + tok(URLSAFE, 60))),
    ("openai-key", GITLEAKS + "openai-api-key",
     same(lambda: "sk-" + tok(ALNUM, 20) + "T3BlbkFJ" + tok(ALNUM, 20))),
    ("openai-project", GITLEAKS + "openai-api-key",
     same(lambda: "sk-proj-" + tok(URLSAFE, 58) + "T3BlbkFJ" + tok(URLSAFE, 58))),
    ("anthropic-key", GITLEAKS + "anthropic-api-key",
     same(lambda: "sk-ant-api03-" + tok(URLSAFE, 93) + "AA")),
    ("huggingface", GITLEAKS + "huggingface-access-token",
     same(lambda: "hf_" + tok(string.ascii_letters, 34))),
    ("twilio-api-key", GITLEAKS + "twilio-api-key", same(lambda: "SK" + tok(HEX, 32))),
    ("sendgrid", GITLEAKS + "sendgrid-api-token",
     same(lambda: "SG." + tok(URLSAFE, 22) + "." + tok(URLSAFE, 43))),
    ("sendinblue", GITLEAKS + "sendinblue-api-token",
     same(lambda: "xkeysib-" + tok(HEX, 64) + "-" + tok(ALNUM, 16))),
    ("npm-token", GITLEAKS + "npm-access-token", same(lambda: "npm_" + tok(ALNUM, 36))),
    ("pypi-token", GITLEAKS + "pypi-upload-token",
     same(lambda: "pypi-AgEIcHlwaS5vcmc" + tok(URLSAFE, 70))),
    ("rubygems", GITLEAKS + "rubygems-api-token", same(lambda: "rubygems_" + tok(HEX, 48))),
    ("digitalocean-pat", GITLEAKS + "digitalocean-pat", same(lambda: "dop_v1_" + tok(HEX, 64))),
    ("shopify", GITLEAKS + "shopify-access-token", same(lambda: "shpat_" + tok(HEX, 32))),
    ("square", GITLEAKS + "square-access-token", same(lambda: "sq0atp-" + tok(URLSAFE, 22))),
    ("telegram-bot", GITLEAKS + "telegram-bot-api-token",
     same(lambda: tok("123456789", 10) + ":AA" + tok(URLSAFE, 33))),
    ("sentry-user", GITLEAKS + "sentry-user-token", same(lambda: "sntryu_" + tok(HEX, 64))),
    ("databricks", GITLEAKS + "databricks-api-token", same(lambda: "dapi" + tok(HEX, 32))),
    ("doppler", GITLEAKS + "doppler-api-token", same(lambda: "dp.pt." + tok(ALNUM, 43))),
    ("linear", GITLEAKS + "linear-api-key", same(lambda: "lin_api_" + tok(ALNUM, 40))),
    ("postman", GITLEAKS + "postman-api-token",
     same(lambda: "PMAK-" + tok(HEX, 24) + "-" + tok(HEX, 34))),
    ("pulumi", GITLEAKS + "pulumi-api-token", same(lambda: "pul-" + tok(HEX, 40))),
    ("vault-service", GITLEAKS + "vault-service-token", same(lambda: "hvs." + tok(URLSAFE, 95))),
    ("age-secret-key", GITLEAKS + "age-secret-key",
     same(lambda: "AGE-SECRET-KEY-1" + tok("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58))),
    ("heroku-v2", GITLEAKS + "heroku-api-key-v2", same(lambda: "HRKU-AA" + tok(URLSAFE, 58))),
    ("planetscale", GITLEAKS + "planetscale-password", same(lambda: "pscale_pw_" + tok(URLSAFE, 43))),
    ("grafana-cloud", GITLEAKS + "grafana-cloud-api-token", same(lambda: "glc_" + tok(ALNUM, 48))),
    ("grafana-sa", GITLEAKS + "grafana-service-account-token",
     same(lambda: "glsa_" + tok(ALNUM, 32) + "_" + tok(HEX, 8))),
    ("dynatrace", GITLEAKS + "dynatrace-api-token",
     same(lambda: "dt0c01." + tok(ALNUM.upper(), 24) + "." + tok(ALNUM, 64))),
    ("atlassian", GITLEAKS + "atlassian-api-token", same(lambda: "ATATT3" + tok(URLSAFE, 186))),
    ("azure-ad-secret", GITLEAKS + "azure-ad-client-secret",
     same(lambda: tok(ALNUM, 3) + "8Q~" + tok(ALNUM + "_~.-", 34))),
    ("facebook-page", GITLEAKS + "facebook-page-access-token", same(lambda: "EAAC" + tok(ALNUM, 120))),
    ("newrelic-user", GITLEAKS + "new-relic-user-api-key", same(lambda: "NRAK-" + tok(ALNUM.upper(), 27))),
    ("flyio", GITLEAKS + "flyio-access-token", same(lambda: "fo1_" + tok(URLSAFE, 43))),
    ("notion", GITLEAKS + "notion-api-token",
     same(lambda: "ntn_" + tok("0123456789", 11) + tok(ALNUM, 35))),
    ("alibaba", GITLEAKS + "alibaba-access-key-id", same(lambda: "LTAI" + tok(ALNUM, 20))),
    ("easypost", GITLEAKS + "easypost-api-token", same(lambda: "EZAK" + tok(ALNUM, 54))),
    ("perplexity", GITLEAKS + "perplexity-api-key", same(lambda: "pplx-" + tok(ALNUM, 48))),
    ("infracost", GITLEAKS + "infracost-api-token", same(lambda: "ico-" + tok(ALNUM, 32))),
    ("prefect", GITLEAKS + "prefect-api-token", same(lambda: "pnu_" + tok(ALNUM, 36))),
    ("readme", GITLEAKS + "readme-api-token", same(lambda: "rdme_" + tok(HEX + "ghijklmnop", 70))),
    ("shippo", GITLEAKS + "shippo-api-token", same(lambda: "shippo_live_" + tok(HEX, 40))),
    ("mailgun", GITLEAKS + "mailgun-private-api-token", same(lambda: "key-" + tok(HEX, 32))),
    ("mailchimp", GITLEAKS + "mailchimp-api-key", same(lambda: tok(HEX, 32) + "-us" + str(rng.randint(1, 20)))),
    ("openshift", GITLEAKS + "openshift-user-token", same(lambda: "sha256~" + tok(URLSAFE, 43))),
    ("jwt", GITLEAKS + "jwt", same(jwt)),
    ("cloudflare-tunnel-token", "runbook: tunnel credentials; cloudflared tunnel token is base64 JSON {a,t,s}",
     same(lambda: b64(json.dumps({"a": tok(HEX, 32), "t": f"{tok(HEX, 8)}-{tok(HEX, 4)}-{tok(HEX, 4)}-{tok(HEX, 4)}-{tok(HEX, 12)}", "s": b64(tok(ALNUM, 32).encode())}).encode()).rstrip("="))),
]


def url(template: str) -> Factory:
    def factory() -> tuple[str, str]:
        secret = pw()
        return template.format(pw=secret, user=tok(string.ascii_lowercase, 5)), secret
    return factory


def url_raw(template: str, raw: str) -> Factory:
    def factory() -> tuple[str, str]:
        secret = tok(ALNUM, 5) + raw + tok(ALNUM, 6)
        return template.format(pw=secret), secret
    return factory


URLS: list[tuple[str, str, Factory]] = [
    ("url-postgres", "runbook: DB passwords; libpq URI user:password@host",
     url("postgres://{user}:{pw}@db.internal:5432/app?sslmode=require")),
    ("url-redis-empty-user", "redis URI with empty user (redis://:password@host)",
     url("redis://:{pw}@cache.internal:6379/0")),
    ("url-mongodb-srv", "MongoDB connection string mongodb+srv://user:pass@cluster",
     url("mongodb+srv://{user}:{pw}@cluster0.ab1cd.mongodb.net/app?retryWrites=true")),
    ("url-amqp", "AMQP URI amqp://user:pass@host/vhost", url("amqp://{user}:{pw}@rabbit:5672/%2f")),
    ("url-smtp", "runbook: SMTP credentials; smtps://user:pass@host:465",
     url("smtps://{user}%40example.org:{pw}@smtp.example.org:465")),
    ("url-mysql", "mysql://user:pass@host/db", url("mysql://{user}:{pw}@127.0.0.1:3306/app")),
    ("url-raw-at", "WHATWG URL: userinfo ends at the last @ (raw @ in the password)",
     url_raw("postgresql://app:{pw}@db:5432/app", "@")),
    ("url-raw-slash", "a raw / in the password, as hand-written DSNs have",
     url_raw("amqp://svc:{pw}@rabbit.internal:5672/prod", "/")),
    ("url-git-token-user", "git remote with a token as the password (x-access-token)",
     lambda: let(tok(ALNUM, 40), lambda s: (f"https://x-access-token:{s}@github.com/org/repo.git", s))),
    ("url-ftp", "ftp://user:pass@host", url("ftp://{user}:{pw}@files.example.net/upload")),
]


def argv(template: str, secret_maker: Callable[[], str] = pw) -> Factory:
    def factory() -> tuple[str, str]:
        secret = secret_maker()
        return template.format(s=secret), secret
    return factory


ARGV_TEXT: list[tuple[str, str, Factory]] = [
    ("argv-token-space", "cloudflared tunnel run --token <token> (runbook: tunnel credentials)",
     argv("cloudflared tunnel --no-autoupdate run --token {s}", lambda: b64(tok(ALNUM, 60).encode()))),
    ("argv-password-space", "a CLI flag --password X", argv("node scripts/migrate.js --password {s} --verbose")),
    ("argv-secret-space", "a CLI flag --secret X", argv("worker --queue mail --secret {s}")),
    ("argv-api-key-space", "a CLI flag --api-key X", argv("uploader --api-key {s} --dry-run")),
    ("argv-mysql-attached", "mysql -p<password> (MySQL client manual)", argv("mysql -h db -uroot -p{s} app")),
    ("argv-mysqldump", "mysqldump -u user -p<password>", argv("mysqldump -u backup -p{s} --all-databases")),
    ("argv-redis-cli", "redis-cli -a <password>", argv("redis-cli -h cache -a {s} ping")),
    ("argv-sshpass", "sshpass -p <password>", argv("sshpass -p {s} ssh deploy@10.0.0.7")),
    ("argv-curl-user", "curl -u user:password (gitleaks curl-auth-user)", argv("curl -s -u admin:{s} https://api.example.org/v1")),
    ("argv-openssl-pass", "openssl -pass pass:<password>", argv("openssl enc -aes-256-cbc -pass pass:{s} -in a -out b")),
    ("argv-mongo", "mongosh -u user -p <password>", argv("mongosh --host db -u app -p {s} --authenticationDatabase admin")),
    ("argv-java-single-dash", "java -password X style single-dash flag", argv("java -jar tool.jar -password {s} -port 8443")),
]
ARGV_JSON: list[tuple[str, str, Factory]] = [
    ("jlist-args-token", "PM2 entry args array ['tunnel','run','--token',T] (review finding)",
     lambda: let(b64(tok(ALNUM, 60).encode()), lambda s: (["tunnel", "--no-autoupdate", "run", "--token", s], s))),
    ("jlist-args-password", "PM2 args array ['--password', X]",
     lambda: let(pw(), lambda s: (["--port", "3000", "--password", s], s))),
    ("jlist-args-mysql", "PM2 args of a mysql script: ['-uroot', '-pX']",
     lambda: let(pw(), lambda s: (["-h", "db", "-uroot", f"-p{s}", "app"], s))),
    ("jlist-node-args-secret", "node_args with --secret X",
     lambda: let(pw(), lambda s: (["--secret", s, "--max-old-space-size=1024"], s))),
]

NAMED_ENV: list[tuple[str, str, Factory]] = [
    (f"name-{key.lower()}", f"key name {key} (word parts: {why})", argv(f"{key}={{s}}"))
    for key, why in [
        ("DB_PASSWORD", "runbook DB passwords"), ("DB_PASSWORDS", "plural"),
        ("ADMIN_PASSKEY", "passkey"), ("SMTP_PASS", "runbook SMTP credentials"),
        ("MYSQL_PWD", "pwd"), ("MAIL_PASSWD", "passwd"), ("REDIS_AUTH", "auth as the last word"),
        ("JWT_SECRET", "secret"), ("SESSION_SECRET", "secret"), ("NEXTAUTH_SECRET", "concatenated"),
        ("API_KEY", "api key"), ("STRIPE_SECRET_KEY", "secret key"), ("LICENSE_KEY", "license key"),
        ("SECRET_KEY_BASE", "Rails"), ("WEBHOOK_SECRET", "secret"), ("COOKIE_SECRET", "cookie"),
        ("PASSWORD_SALT", "salt"), ("ENCRYPTION_KEY", "encryption key"), ("PM2_SECRET_KEY", "PM2 link key"),
        ("GITHUB_TOKEN", "token"), ("CLOUDFLARE_TUNNEL_TOKEN", "runbook tunnel credentials"),
        ("OAUTH_CLIENT_SECRET", "client secret"), ("DBPASSWORD", "no separator"),
        ("ROOT_PW", "pw"), ("KEYSTORE_PASSPHRASE", "passphrase"),
    ]
] + [
    ("name-camel-passwordhash", "camelCase passwordHash (review finding)", argv("passwordHash={s}")),
    ("name-camel-clientsecret", "camelCase clientSecret", argv("clientSecret={s}")),
    ("name-kebab-db-pass", "kebab db-pass", argv("db-pass={s}")),
    ("name-numeric-password", "a password of digits only", argv("DB_PASSWORD={s}", lambda: tok("0123456789", 9))),
    ("name-quoted-spaces", "dotenv quoted value with spaces", argv('SMTP_PASSWORD="{s} and more words"')),
    ("name-app-key-base64", "Laravel APP_KEY=base64:…", argv("APP_KEY=base64:{s}", lambda: b64(tok(ALNUM, 32).encode()))),
]

PEMS: list[tuple[str, str, Factory]] = [
    ("pem-rsa", "PEM RSA PRIVATE KEY (RFC 7468)", lambda: let(pem(), lambda k: (k, k.split("\n")[1]))),
    ("pem-pkcs8", "PEM PRIVATE KEY (PKCS#8)", lambda: let(pem("PRIVATE KEY"), lambda k: (k, k.split("\n")[2]))),
    ("pem-ec", "PEM EC PRIVATE KEY", lambda: let(pem("EC PRIVATE KEY", lines=3), lambda k: (k, k.split("\n")[1]))),
    ("pem-openssh", "OPENSSH PRIVATE KEY", lambda: let(pem("OPENSSH PRIVATE KEY", lines=6), lambda k: (k, k.split("\n")[3]))),
    ("pem-encrypted", "ENCRYPTED PRIVATE KEY", lambda: let(pem("ENCRYPTED PRIVATE KEY"), lambda k: (k, k.split("\n")[1]))),
    ("pem-pgp", "PGP PRIVATE KEY BLOCK", lambda: let(pem("PGP PRIVATE KEY BLOCK"), lambda k: (k, k.split("\n")[2]))),
    ("pem-truncated", "a key cut off before its END line (review finding)",
     lambda: let(pem(end=""), lambda k: (k, k.split("\n")[2]))),
    ("pem-mismatched-end", "BEGIN RSA PRIVATE KEY … END PRIVATE KEY (review finding)",
     lambda: let(pem(end="PRIVATE KEY"), lambda k: (k, k.split("\n")[3]))),
    ("pem-one-line-escaped", "a key in a JSON log line, newlines as \\n",
     lambda: let(pem(), lambda k: (k.replace("\n", "\\n"), k.split("\n")[2]))),
    ("pem-spaces", "a key whose newlines became spaces (env var pasted on one line)",
     lambda: let(pem("PRIVATE KEY"), lambda k: (k.replace("\n", " "), k.split("\n")[2]))),
]

BASE64: list[tuple[str, str, Factory]] = [
    ("base64-env-assignment", "base64 of KEY=secret under a neutral key (review finding)",
     lambda: let(b64(f"DB_PASSWORD={pw()}\n".encode()), lambda v: (v, v))),
    ("base64-json-password", "base64 of a JSON config holding a password",
     lambda: let(b64(json.dumps({"user": "app", "password": pw()}).encode()), lambda v: (v, v))),
    ("base64-url-creds", "base64 of a connection URL with a password",
     lambda: let(b64(f"postgres://app:{pw()}@db:5432/app".encode()), lambda v: (v, v))),
]

LOG_LINES: list[tuple[str, str, Factory]] = [
    ("log-bearer-lower", "lowercase `authorization: bearer` header in an access log (review finding)",
     argv("2026-06-12T03:14:15Z DEBUG upstream request headers authorization: bearer {s}", lambda: tok(ALNUM, 40))),
    ("log-bearer", "Authorization: Bearer in a debug log", argv('curl -H "Authorization: Bearer {s}" https://api', lambda: tok(URLSAFE, 48))),
    ("log-basic", "Authorization: Basic base64(user:pass)",
     argv("GET /admin Authorization: Basic {s}", lambda: b64(f"admin:{pw()}".encode()))),
    ("log-cookie", "Cookie header with a session id", argv("request cookie: sid={s}; theme=dark", lambda: tok(URLSAFE, 32))),
    ("log-json-two-words", 'text mode "password":"two words" (review finding)',
     argv('{{"level":"info","msg":"login","password":"{s} words"}}')),
    ("log-key-value-quoted", "password='two, words' in a log", argv("auth attempt user=bob password='{s}, again' ok")),
    ("log-connection-string", "ADO connection string Password=…; with a space",
     argv("Server=db;Database=app;User Id=sa;Password={s} two;Encrypt=true")),
    ("log-query-token", "access_token in a query string", argv("GET /cb?code=1&access_token={s}&state=x 302", lambda: tok(ALNUM, 32))),
    ("log-x-api-key", "X-Api-Key header", argv("x-api-key: {s}", lambda: tok(HEX, 40))),
    ("log-unicode-escaped-key", "a \\u0061-escaped key in a JSON log line (review finding)",
     argv('{{"p\\u0061ssword":"{s}","ok":true}}')),
    ("log-escaped-json", "JSON inside a JSON string in a log (escaped quotes)",
     argv('{{"msg":"{{\\"db_password\\":\\"{s}\\"}}"}}')),
    ("log-yaml-style", "YAML-ish `password: value` line", argv("  password: {s}")),
    ("log-env-dump-line", "an app printing process.env as `KEY=value` lines", argv("SMTP_PASSWORD={s} SMTP_PORT=587")),
    ("log-high-entropy", "a random string on a line about a webhook secret", argv("webhook secret is {s}", lambda: tok(ALNUM, 32))),
    ("log-php-array", "PHP/Ruby `'password' => 'x'` syntax", argv("config: {{ 'password' => '{s}' }}")),
    ("log-s3-presigned", "AWS SigV4 presigned URL: X-Amz-Signature query parameter",
     argv("GET https://b.s3.amazonaws.com/o.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={s} 200",
          lambda: tok(HEX, 64))),
    ("log-azure-sas", "Azure storage SAS URL: sig= query parameter",
     argv("PUT https://acct.blob.core.windows.net/c/b?sv=2021-06-08&se=2026-06-13&sig={s} 201",
          lambda: tok(ALNUM, 30) + "%3D")),
]

NEUTRAL_KEYS = ["SERVICE_CONFIG", "UPSTREAM", "SETTING_A", "EXTRA", "VALUE_1", "ORIGIN_INFO", "NOTE"]


# ------------------------------------------------------------------------------ containers

def base_jlist() -> list[dict]:
    return json.loads(JLIST.read_text())


def env_doc(key: str, value: str) -> str:
    return f"NODE_ENV=production\nPORT=3000\n{key}={value}\nLOG_LEVEL=info\n"


def dump_doc(key: str, value: str, nested_key: str = "env") -> str:
    apps = base_jlist()
    for app in apps:
        app["pm2_env"][nested_key][key] = value
        app["pm2_env"][key] = value
    # dump.pm2 is the pm2_env entries, pretty-printed
    return json.dumps([app["pm2_env"] for app in apps], indent=2)


def jlist_doc(key: str, value: str, banner: bool) -> str:
    apps = base_jlist()
    apps[0]["pm2_env"]["env"][key] = value
    text = json.dumps(apps)
    if banner:
        text = ("[PM2] Spawning PM2 daemon with pm2_home=/home/ubuntu/.pm2\n"
                "[PM2] PM2 Successfully daemonized\n" + text)
    return text + "\n"


def log_doc(line: str) -> str:
    return ("2026-06-12T03:14:10Z App [backend-dev:1] starting in fork_mode\n"
            f"{line}\n2026-06-12T03:14:16Z GET /health 200 1.2 ms\n")


def placed(value: str, index: int) -> tuple[str, str]:
    """The document, and its container's name, for a value planted under a neutral key."""
    key = NEUTRAL_KEYS[index % len(NEUTRAL_KEYS)]
    form = index % 5
    if form == 0:
        return env_doc(key, value), "env"
    if form == 1:
        return dump_doc(key, value), "dump.pm2"
    if form == 2:
        return jlist_doc(key, value, banner=True), "jlist-banner"
    if form == 3:
        return log_doc(f"2026-06-12T03:14:15Z worker config {key.lower()}={value} loaded"), "log"
    return "\ufeff" + jlist_doc(key, value, banner=False), "jlist-bom"


def secrets() -> list[dict]:
    records: list[dict] = []

    def add(shape: str, source: str, container: str, document: str, secret: str) -> None:
        assert secret in document, (shape, secret)
        records.append({"shape": shape, "source": source, "container": container,
                        "document": document, "secret": secret})

    for shape, source, factory in PROVIDERS + URLS + BASE64:
        for index in range(5 if shape.startswith(("url", "base64")) else 4):
            value, secret = factory()
            document, container = placed(value, index + len(records))
            add(shape, source, container, document, secret)
    for shape, source, factory in PEMS:
        for index in range(3):
            value, secret = factory()
            if index == 0:
                add(shape, source, "log", log_doc(value), secret)
            elif index == 1:
                add(shape, source, "dump.pm2", dump_doc("TLS_MATERIAL", value), secret)
            else:
                add(shape, source, "env", f'DEPLOY_NOTE="{value}"\nPORT=3000\n', secret)
    for shape, source, factory in ARGV_TEXT + LOG_LINES:
        for index in range(3):
            line, secret = factory()
            if index == 2 and shape.startswith("argv"):
                apps = base_jlist()
                apps[1]["pm2_env"]["env"]["npm_lifecycle_script"] = line
                add(shape, source, "jlist", json.dumps(apps), secret)
            else:
                add(shape, source, "log", log_doc(line), secret)
    for shape, source, factory in ARGV_JSON:
        for index in range(3):
            args, secret = factory()
            apps = base_jlist()
            field = "node_args" if "node_args" in shape else "args"
            apps[index % 2]["pm2_env"][field] = args
            if "mysql" in shape:  # PM2 running the mysql client itself
                apps[index % 2]["pm2_env"]["pm_exec_path"] = "/usr/bin/mysql"
            text = json.dumps(apps) if index != 1 else json.dumps([a["pm2_env"] for a in apps], indent=2)
            add(shape, source, "jlist" if index != 1 else "dump.pm2", text, secret)
    for shape, source, factory in NAMED_ENV:
        for index in range(3):
            line, secret = factory()
            key, _eq, value = line.partition("=")
            if index == 0:
                add(shape, source, "env", f"PORT=3000\n{line}\n", secret)
            elif index == 1:
                add(shape, source, "dump.pm2", dump_doc(key, value.strip('"')), secret)
            else:
                add(shape, source, "log", log_doc(f"[config] {key}={value}"), secret)
    # The runbook's env in JSON-in-a-string (Unitech/pm2 #4080) and a numeric JSON password.
    for _index in range(4):
        secret = pw()
        add("json-in-env-string", "env value holding JSON (Unitech/pm2 #4080)", "jlist",
            jlist_doc("NODE_CONFIG", json.dumps({"db": {"host": "db", "password": secret}}), False),
            secret)
        number = rng.randint(10**7, 10**9)
        add("json-numeric-password", "a JSON number under a password key", "json",
            json.dumps([{"name": "app", "pm2_env": {"env": {"DB_PASSWORD": number}}}]), str(number))
        secret = pw()
        add("json-nested-credentials", "a credentials object (service account JSON)", "json",
            json.dumps({"credentials": {"client_email": "svc@proj.iam.example", "private_key_id": tok(HEX, 40),
                                        "token_uri": "https://oauth2.example/token", "secret": secret}}), secret)
    return records


# ------------------------------------------------------------------------------ near misses

PLAIN_ENV: list[tuple[str, str]] = [
    ("MAX_TOKENS", "4096"), ("TOKEN_EXPIRY", "3600"), ("AUTH_RETRIES", "3"),
    ("SECRET_ROTATION_DAYS", "30"), ("JWT_EXPIRES_IN", "6h"), ("SESSION_TTL", "86400"),
    ("PASSWORD_MIN_LENGTH", "12"), ("TOKEN_URL", "https://auth.example.org/oauth/token"),
    ("AUTH_PROVIDER", "github"), ("COOKIE_SECURE", "true"), ("SSH_AUTH_SOCK", "/tmp/ssh-XYZ123/agent.4242"),
    ("DB_PASSWORD_FILE", "/run/secrets/db_password"), ("KEY_PREFIX", "sess:"), ("TOKENIZERS_PARALLELISM", "false"),
    ("PASSENGER_APP_ENV", "production"), ("AUTHOR", "Jane Doe"), ("NEXTAUTH_URL", "https://tbp.flatlogic.app"),
    ("PM2_PUBLIC_KEY", "x7k2m9q4w1e8r5t"), ("SESSION_COOKIE_NAME", "sid"), ("API_KEY_HEADER", "X-Api-Key"),
    ("TOKEN_TYPE", "Bearer"), ("OPENAI_MAX_TOKENS", "1024"), ("AUTH_TIMEOUT_MS", "5000"),
    ("JWT_ALGORITHM", "HS256"), ("SECRET_NAME", "prod/db"), ("PASSWORD_RESET_URL", "https://tbp.flatlogic.app/reset"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/service-account.json"), ("SSL_KEY_PATH", "/etc/ssl/private/tbp.key"),
    ("TOKENS_PER_MINUTE", "60000"), ("AUTH_ENABLED", "false"), ("SESSION_STORE", "redis"),
    ("COOKIE_MAX_AGE", "604800"), ("RATE_LIMIT_TOKENS", "100"), ("PASSWORD_HASH_ROUNDS", "12"),
    ("SECRET_ROTATION", "30d"), ("KEY_ID", "k1"), ("AUTH_DOMAIN", "tbp.eu.auth0.example"),
    ("NUM_API_KEYS", "2"), ("TOKEN_BUCKET_SIZE", "50"), ("AUTH_CALLBACK_PATH", "/api/auth/callback"),
    ("DB_PASSWORD", "${DB_PASSWORD}"), ("SMTP_PASS", "$SMTP_PASS"), ("API_KEY", "<your-api-key>"),
    ("JWT_SECRET", "********"), ("PWD", "/home/ubuntu/executor/workspace/backend"), ("OLDPWD", "/home/ubuntu"),
    ("PUBLIC_KEY", "/etc/keys/signing.pub"), ("STRIPE_PUBLISHABLE_KEY", "pk_test_51AbCdEf"),
    ("NODE_ENV", "dev_stage"), ("PORT", "3000"), ("FRONT_PORT", "3001"), ("HOSTNAME", "tbp-vm-01"),
    ("LANG", "C.UTF-8"), ("SHLVL", "1"), ("PM2_HOME", "/home/ubuntu/.pm2"), ("LOGNAME", "ubuntu"),
    ("XDG_SESSION_ID", "42"), ("XDG_RUNTIME_DIR", "/run/user/1000"), ("MAIL", "/var/mail/ubuntu"),
    ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus"), ("SSH_CONNECTION", "10.0.0.1 51234 10.0.0.5 22"),
    ("NEXT_TELEMETRY_DISABLED", "1"), ("NODE_OPTIONS", "--max-old-space-size=2048"),
    ("npm_lifecycle_script", "next start -p 3001"), ("npm_config_user_agent", "npm/10.2.4 node/v20.11.1 linux x64 workspaces/false"),
    ("npm_package_version", "0.1.0"), ("npm_config_cache", "/home/ubuntu/.npm"), ("TERM", "xterm-256color"),
    ("LS_COLORS", "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35"), ("UV_THREADPOOL_SIZE", "4"),
    ("FFMPEG_REVERSE_TIMEOUT_MS", "600000"), ("BACKEND_URL", "http://127.0.0.1:3000"),
    ("DATABASE_URL", "postgres://db.internal:5432/app"), ("REDIS_URL", "redis://cache.internal:6379/0"),
    ("SENTRY_ENVIRONMENT", "production"), ("GIT_COMMIT", "3f2a9c7e1b4d5a6f8e9d0c1b2a3f4e5d6c7b8a9f"),
    ("BUILD_ID", "20260612T031415Z-ab12cd3"), ("RELEASE", "20260612T031415Z-ab12cd3f4e5d6c7b8a9"),
    ("INSTANCE_ID", "3f1c2b9a-8d7e-4f60-9a1b-2c3d4e5f6a7b"), ("TZ", "UTC"), ("KEYTIMEOUT", "1"),
    ("HISTCONTROL", "ignoredups"), ("COLORTERM", "truecolor"), ("EDITOR", "vim"),
    ("PASSWORD_POLICY", "strong"), ("TOKEN_ISSUER", "https://auth.example.org/"),
    ("CREDENTIALS_PROVIDER", "aws-sdk"), ("AUTH_STRATEGY", "jwt"), ("SECRET_REF", "vault:kv/app/db"),
    ("COOKIE_SAMESITE", "lax"), ("SESSION_ENABLED", "yes"), ("MAX_LOGIN_ATTEMPTS", "5"),
    ("PASS_THROUGH", "true"), ("BYPASS_CACHE", "false"), ("COMPASS_HEADING", "270"),
]

PLAIN_LOG: list[str] = [
    "GET /api/auth/login 200 12.3 ms - 512",
    "token bucket refilled: 100 tokens available",
    "password reset email sent to user 42",
    "Authorization failed: invalid token for user 7",
    "release 20260612T031415Z-ab12cd3f4e5d6c7b8a9 activated",
    "commit 3f2a9c7e1b4d5a6f8e9d0c1b2a3f4e5d6c7b8a9f deployed by ubuntu",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 pulled",
    "job 3f1c2b9a-8d7e-4f60-9a1b-2c3d4e5f6a7b finished in 2.4 s",
    "npm install @types/node@20.11.1 --save-dev",
    "fetching https://registry.npmjs.org/@scope%2fpkg",
    "listening on http://127.0.0.1:3000",
    "proxy to http://localhost:3001/api/session 502",
    "next start -p 3001",
    "node --max-old-space-size=4096 --inspect=127.0.0.1:9229 server.js",
    "docker run -p 8080:80 nginx",
    "server --port 3000 --host 0.0.0.0",
    "session started for user ubuntu from 10.0.0.5",
    "App [backend-dev:1] online pid 4242",
    "Apache/2.4.58 (Ubuntu) Server at tbp.flatlogic.app Port 80",
    "mail sent to ops@tbp.flatlogic.app",
    "cookie consent banner shown",
    "Bearer authentication required",
    "key rotation scheduled in 30 days",
    "secret manager reachable: true",
    "using ssh-keygen -t ed25519 -C deploy",
    "token validation took 3 ms",
    "auth: true, session: active",
    "max_tokens=4096 temperature=0.2",
    "retrying with auth_retries=3 backoff=2s",
    "PM2 | App [frontend-dev:0] exited with code [0] via signal [SIGINT]",
    "Error: connect ECONNREFUSED 127.0.0.1:5432",
    "warn: deprecated option --secure-heap=0",
    "build id 7Fq2mZ8pLk has 3 chunks",
    "https://github.com/org/repo/commit/3f2a9c7e1b4d5a6f8e9d0c1b2a3f4e5d6c7b8a9f",
    "GET /users/@alice 200",
    "https://example.com:8443/path/@scope/pkg 200",
    "password field left empty by user",
    "secrets loaded: 4",
    "keys: [\"id\", \"name\", \"email\"]",
    "the token is missing",
    ("sshd[1234]: Accepted publickey for ubuntu from 10.0.0.1 port 51234 ssh2: ED25519 "
     "SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"),
    "npm http fetch GET 200 integrity sha512-Q2xhcmlmeUF1dGhUb2tlblZhbGlkYXRpb24xMjM0NTY3ODkwQUJD",
    "webpack cache key=main compiled in 812 ms",
    "redis connected, keyPrefix=sess: db=0",
    "prisma:query SELECT \"User\".\"passwordHash\" FROM \"User\" WHERE \"email\" = $1",
    "TypeError: Cannot read properties of undefined (reading 'token')",
    "GET /api/v1/token/refresh 200 4 ms",
]
PLAIN_JSON_FIELDS: list[tuple[str, object]] = [
    ("pm_id", 3), ("unique_id", "b5e684bd-dd7c-4a92-9539-cae36c4df560"), ("node_version", "20.11.1"),
    ("pm_exec_path", "/usr/bin/npm"), ("exec_mode", "fork_mode"), ("restart_time", 2),
    ("kill_retry_time", 100), ("username", "ubuntu"), ("windowsHide", True),
    ("instance_var", "NODE_APP_INSTANCE"), ("status", "online"), ("namespace", "default"),
    ("_pm2_version", "5.3.0"), ("versioning", {"type": "git", "url": "https://github.com/org/repo.git",
                                               "revision": "3f2a9c7e1b4d5a6f8e9d0c1b2a3f4e5d6c7b8a9f",
                                               "branch": "main", "remotes": ["origin"]}),
    ("axm_options", {"isModule": False, "metrics": {"http": False}, "tracing": {"enabled": False}}),
    ("auth", {"retries": 3, "enabled": True}), ("session", {"maxAge": 3600, "secure": True}),
    ("tokenLimit", 2048), ("secretRotationDays", 30), ("passwordMinLength", 12),
    ("max_memory_restart", "1G"), ("created_at", 1781234000000), ("pm_uptime", 1781234567890),
]


def plain() -> list[dict]:
    records: list[dict] = []

    def add(shape: str, source: str, container: str, document: str, keep: str) -> None:
        assert keep in document, (shape, keep)
        records.append({"shape": shape, "source": source, "container": container,
                        "document": document, "keep": keep})

    for index, (key, value) in enumerate(PLAIN_ENV):
        source = "near miss: a secret-ish or ordinary name holding a count, duration, path, id or reference"
        add(f"plain-env-{key.lower()}", source, "env", env_doc(key, value), f"{key}={value}")
        document = dump_doc(key, value)
        add(f"plain-dump-{key.lower()}", source, "dump.pm2", document, json.dumps(value))
        if index % 2 == 0:
            add(f"plain-jlist-{key.lower()}", source, "jlist-banner", jlist_doc(key, value, True),
                json.dumps(value))
    for line in PLAIN_LOG:
        add("plain-log", "near miss: ordinary log text with secret words, ids, hashes, urls, flags",
            "log", log_doc(line), line)
    for key, value in PLAIN_JSON_FIELDS:
        apps = base_jlist()
        apps[0]["pm2_env"][key] = value
        keep = json.dumps({key: value}, separators=(",", ":"))[1:-1]
        add(f"plain-json-{key}", "near miss: PM2 entry fields (tests/data/pm2 recordings)", "jlist",
            json.dumps(apps, separators=(",", ":")), keep)
    for index in range(12):
        text = f"name=app{index}\nregion=eu-west-{index}\n"
        value = b64(text.encode())
        add("plain-base64-text", "near miss: base64 of plain key=value text", "env",
            env_doc("BOOT_CONFIG", value), value)
    return records


def main() -> None:
    for name, rows in (("secrets.jsonl", secrets()), ("plain.jsonl", plain())):
        with (HERE / name).open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        shapes = {row["shape"] for row in rows}
        print(f"{name}: {len(rows)} records, {len(shapes)} shapes")


if __name__ == "__main__":
    main()
