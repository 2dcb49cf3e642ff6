"""The Apache snippet the zero-downtime switch needs: found, or printed by doctor when missing;
and the include vmkeeper writes at every switch."""

from __future__ import annotations

from pathlib import Path

from vmkeeper.adapters import apache
from vmkeeper.health.doctor import switch_snippet_check
from vmkeeper.health.model import Status
from vmkeeper.releases import handover
from vmkeeper.settings import Settings


def _settings(tmp_path: Path, config_text: str, *, site: str | None = None) -> Settings:
    config = tmp_path / "apache2.conf"
    config.write_text(config_text)
    if site is not None:
        (tmp_path / "sites-enabled").mkdir()
        (tmp_path / "sites-enabled" / "000-site.conf").write_text(site)
    return Settings.model_validate({"proxy": {
        "config": str(config), "frontend_include": str(tmp_path / "vmkeeper-frontend.conf")}})


def test_doctor_prints_the_snippet_when_the_config_lacks_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "ProxyPass / http://127.0.0.1:3001/ retry=0\n")
    check = switch_snippet_check(settings)
    assert check.status is Status.WARN and check.reason == "no_switch_snippet"
    assert f'IncludeOptional "{tmp_path / "vmkeeper-frontend.conf"}"' in check.summary
    assert "runbook's switch" in check.summary and "a2enmod rewrite" in check.summary
    assert check.details["snippet"] == apache.snippet(settings.proxy.frontend_include)
    assert not handover.available(settings).ok
    assert "vmkeeper doctor" in handover.available(settings).reason


def test_the_snippet_in_a_debian_site_file_is_found(tmp_path: Path) -> None:
    include = tmp_path / "vmkeeper-frontend.conf"
    site = ("<VirtualHost *:80>\n  ProxyPass /api http://127.0.0.1:3000/api\n"
            + "".join(f"  {line}\n" for line in apache.snippet(include).splitlines())
            + "  ProxyPass / http://127.0.0.1:3001/\n</VirtualHost>\n")
    settings = _settings(tmp_path, "IncludeOptional sites-enabled/*.conf\n", site=site)
    assert switch_snippet_check(settings).status is Status.OK
    assert handover.available(settings).ok


def test_an_include_of_another_file_or_a_comment_is_not_the_snippet(tmp_path: Path) -> None:
    include = tmp_path / "vmkeeper-frontend.conf"
    settings = _settings(tmp_path, f"# IncludeOptional {include}\nInclude {include}.old\n")
    assert switch_snippet_check(settings).status is Status.WARN


def test_the_map_routes_one_port_and_names_every_retained_release_static(
    tmp_path: Path,
) -> None:
    newer, older = tmp_path / "b" / "build" / "static", tmp_path / "a" / "build" / "static"
    blank = tmp_path / "with space" / "build" / "static"
    elsewhere = Path("/elsewhere/build/static")
    text = apache.render_frontend_map(3002, [newer, blank, older, elsewhere], tmp_path)
    assert apache.map_port(text) == 3002
    lines = [line for line in text.splitlines() if line.startswith("static")]
    assert lines == ["static1 b/build/static", "static2 a/build/static"]
    many = [tmp_path / f"r{n}" / "build" / "static" for n in range(9)]
    slots = apache.render_frontend_map(3001, many, tmp_path).count("\nstatic")
    assert slots == apache.STATIC_SLOTS
    assert apache.map_port("# nothing\nstatic1 a\n") is None


def test_the_include_is_fixed_text_the_map_steers(tmp_path: Path) -> None:
    include = tmp_path / "vmkeeper-frontend.conf"
    text = apache.render_frontend_include(include, tmp_path / "releases", [3001, 3002])
    assert f'RewriteMap {apache.MAP_NAME} "txt:{tmp_path / "vmkeeper-frontend.map"}"' in text
    # Static answers come first; a chunk in no release is never proxied (a 404).
    assert text.index('RewriteRule "^/_next/static/') < text.index('ProxyPass "/_next/static/" "!"')
    assert text.index('ProxyPass "/_next/static/" "!"') < text.index('ProxyPass "/" ')
    assert text.count("RewriteCond") == apache.STATIC_SLOTS
    assert 'ProxyPass "/" "http://${VMKEEPER_FRONTEND}/" interpolate disablereuse=On' in text
    assert "ProxyPassReverse \"/\" \"http://127.0.0.1:3002/\"" in text
