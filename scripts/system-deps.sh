#!/usr/bin/env bash
# Install the Debian packages the test suite needs when they are missing (these machines run as root).
#   postgresql: a real server for the PostgreSQL store tests (the tests start a throwaway cluster)
#   openjdk-17-jre-headless: a JRE for Spark local mode (the batch evaluator's agreement test on Spark)
#   chromium: the real browser the campaign report test opens through Playwright (Playwright's own
#             browser download cannot work on these machines; Debian's build is used instead)
set -euo pipefail
need=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' > /dev/null || need+=(postgresql)
command -v java > /dev/null || need+=(openjdk-17-jre-headless)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${need[*]} (run as root, or: sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "==> apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null
fi
