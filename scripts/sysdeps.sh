#!/usr/bin/env bash
# Install the Debian packages named on the command line when they are missing and we can (root + apt-get);
# otherwise say in one line what to install. Never fails the build on its own: the tests that need a tool
# say so clearly.
missing=()
for pkg in "$@"; do
  case "$pkg" in
    lib*) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); continue ;;  # a library: ask dpkg, not PATH
    *) bin=$pkg ;;
  esac
  command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } \
    || echo "seehear: could not install ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
else
  echo "seehear: missing ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
fi
exit 0
