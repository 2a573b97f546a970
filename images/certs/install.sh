#!/bin/sh
# Add the extra CA certificates copied into /tmp/extra-ca (see images/certs/README.md)
# to the system trust store. Runs as root inside an image build; no-op without certs.
set -eu
found=0
for f in /tmp/extra-ca/*.crt; do
  [ -f "$f" ] || continue
  mkdir -p /usr/local/share/ca-certificates/mlhub
  cp "$f" "/usr/local/share/ca-certificates/mlhub/$(basename "$f")"
  found=1
done
if [ "$found" = 1 ]; then
  if command -v update-ca-certificates >/dev/null; then
    update-ca-certificates >/dev/null 2>&1 || true
  fi
  # Some bundles hold several certificates in one file; make sure all of them are trusted.
  cat /usr/local/share/ca-certificates/mlhub/*.crt >> /etc/ssl/certs/ca-certificates.crt
fi
rm -rf /tmp/extra-ca
