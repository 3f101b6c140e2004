"""The user's proxy and CA certificates, passed into environments and image builds.

Config `proxy: {http, https, no_proxy}` (each defaulting to the host's HTTP_PROXY, HTTPS_PROXY,
NO_PROXY) and `ca_certificates: [files]`. An environment gets the proxy variables (with an
allowlist its egress proxy goes through the upstream one instead), and the CAs in a bundle
of its own beside the system's, named by the variables of openssl, curl, pip, requests, git,
node and npm; an image build gets the proxy as build arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmtui.errors import BadInput

CA_FOLDER = "/etc/glmtui"
CA_EXTRA = f"{CA_FOLDER}/extra-ca.pem"  # the user's CAs
CA_BUNDLE = f"{CA_FOLDER}/ca-bundle.pem"  # the system's and the user's
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")


def upstream_proxy(config: Any, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{http, https, no_proxy}: the ones set, from the config, else the host's variables."""
    environ = os.environ if environ is None else environ
    found = {}
    for key, variable in (("http", "HTTP_PROXY"), ("https", "HTTPS_PROXY"), ("no_proxy", "NO_PROXY")):
        value = config.get(f"proxy.{key}") or environ.get(variable) or environ.get(variable.lower())
        if value:
            found[key] = value
    return found


def proxy_variables(upstream: Mapping[str, str]) -> dict[str, str]:
    """What programs read to go through `upstream` (no allowlist: straight to it)."""
    variables: dict[str, str] = {}
    for key, names in (("http", ("HTTP_PROXY", "http_proxy", "npm_config_proxy")),
                       ("https", ("HTTPS_PROXY", "https_proxy", "npm_config_https_proxy", "PIP_PROXY")),
                       ("no_proxy", ("NO_PROXY", "no_proxy"))):
        if key in upstream:
            variables.update(dict.fromkeys(names, upstream[key]))
    return variables


def build_arguments(upstream: Mapping[str, str]) -> dict[str, str]:
    """The proxy as the build arguments Docker knows without an ARG (RUN steps see them)."""
    names = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"}
    return {name: value for name, value in proxy_variables(upstream).items() if name in names}


def ca_certificates(config: Any) -> bytes:
    """The configured CA files, joined (b"" when none); a file that is missing or not PEM: BadInput."""
    parts = []
    for name in config.get("ca_certificates") or []:
        path = Path(name).expanduser()
        try:
            data = path.read_bytes()
        except OSError as err:
            raise BadInput(f"ca_certificates: cannot read {path}: {err.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise BadInput(f"ca_certificates: {path} holds no PEM certificate", hint="convert it: openssl x509 -in FILE -out FILE.pem")
        parts.append(data.rstrip(b"\n") + b"\n")
    return b"".join(parts)


def ca_variables() -> dict[str, str]:
    """The variables that make programs trust the bundle (node: only the extra ones, beside its own)."""
    variables = dict.fromkeys(("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "GIT_SSL_CAINFO",
                               "npm_config_cafile"), CA_BUNDLE)
    variables["NODE_EXTRA_CA_CERTS"] = CA_EXTRA
    return variables


# Run as root in the environment once its CA file is in: the bundle is the system's and the
# user's; the system store gets them too where update-ca-certificates is there.
INSTALL_CA = f"""
set -e
bundle=
for candidate in {' '.join(SYSTEM_BUNDLES)}; do
  if [ -f "$candidate" ]; then bundle=$candidate; break; fi
done
if [ -n "$bundle" ]; then cat "$bundle" {CA_EXTRA} > {CA_BUNDLE}; else cp {CA_EXTRA} {CA_BUNDLE}; fi
chmod 644 {CA_EXTRA} {CA_BUNDLE}
if command -v update-ca-certificates >/dev/null 2>&1 && [ -d /usr/local/share/ca-certificates ]; then
  cp {CA_EXTRA} /usr/local/share/ca-certificates/glmtui-extra.crt
  update-ca-certificates >/dev/null 2>&1 || true
fi
"""
