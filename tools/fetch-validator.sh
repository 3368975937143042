#!/usr/bin/env bash
# The HL7 FHIR validator of the conformance tests (tests/conformance/), built into
# .validator/ (git-ignored). Run by `make validator` (and so `make test`); idempotent:
# when .validator/stamp matches the inputs (this script, tools/validator/pom.xml and
# its Java sources) nothing is done and nothing printed.
#
# * Java 17 and Maven: installed from Debian (openjdk-17-jdk-headless maven) when
#   missing, as root; without root the conformance tests skip with a visible reason.
# * tools/validator/pom.xml (exact versions): the first build fetches HAPI FHIR's
#   validator and the R4 core definitions from Maven Central into ~/.m2; later builds
#   run offline (mvn -o). The jar goes to .validator/build, its classpath to
#   .validator/lib.
# * FHIR NPM packages, by `npm pack` at exact versions into .validator/packages, each
#   checked against its pinned sha512 (npm's "integrity"): the IPS IG 2.0.0 and the
#   two of its dependencies the npm registry serves (hl7.fhir.r4.core 4.0.1 is not
#   there: the R4 core definitions come from hapi-fhir-validation-resources-r4).
#   The registry has neither hl7.terminology.r4 6.5.0 nor hl7.fhir.uv.extensions.r4 5.2.0
#   (IPS's declared versions) nor hl7.fhir.uv.ipa: 7.0.1 and 5.3.0-ballot-tc1 are taken,
#   the latter being the extensions IPS 2.0.0's snapshots were generated from.
#   .validator/packages.txt lists them for the tests, in the order they are loaded.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.validator"
POM="$ROOT/tools/validator/pom.xml"
PACKAGES=(
  "hl7.fhir.uv.ips 2.0.0 sha512-4PWToJ9b1FgXsm9DIvHiU6HO9Z5m75jxk0e0MXOmhFlf2m2slk/d6RoiSYIChKJlvmtJ7GbRftt7PphlwmZcbQ=="
  "hl7.terminology.r4 7.0.1 sha512-UamZUcARk/TEaJb7X0hDyANmC7bCv0Jof0u0uGIOB2O9VQX0uV45Vf4EyONHM6Sejv6q7sXEAzKAQsgw1Cld3A=="
  "hl7.fhir.uv.extensions.r4 5.3.0-ballot-tc1 sha512-mhPmWj0dZvIC7JQLkqxT42/UpoIyYwFtSiIZbhX/ArfX96hR5oTqNvAUvMD+dMH45m4mGMQ19WyCZFpP1OLEbQ=="
)
say() { echo "fetch-validator: $*" >&2; }

inputs_hash() {
  {
    cat "${BASH_SOURCE[0]}" "$POM"
    find "$ROOT/tools/validator/src" -type f -name '*.java' | LC_ALL=C sort | xargs cat
  } | sha256sum | cut -d' ' -f1
}

want="$(inputs_hash)"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$want" ] \
  && [ -f "$OUT/build/phrx-fhir-validator.jar" ] && [ -f "$OUT/packages.txt" ]; then
  exit 0
fi

# -- Java and Maven ------------------------------------------------------------------
java_ok() { command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 \
  && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; }
if ! java_ok; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "no Java 17+ and Maven (need root and apt-get to install them); conformance tests will skip"
    exit 0
  fi
  say "installing Debian's openjdk-17-jdk-headless and maven"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null \
    && apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null; }; then
    say "apt-get install openjdk-17-jdk-headless maven failed; conformance tests will skip"
    exit 0
  fi
fi

rm -f "$OUT/stamp"
mkdir -p "$OUT/packages"

# -- FHIR packages -------------------------------------------------------------------
integrity() { # npm's sha512 integrity of file $1
  python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}
: >"$OUT/packages.txt.tmp"
for entry in "${PACKAGES[@]}"; do
  read -r name version sum <<<"$entry"
  file="$OUT/packages/$name-$version.tgz"
  if [ ! -f "$file" ] || [ "$(integrity "$file")" != "$sum" ]; then
    say "npm pack $name@$version"
    rm -f "$file"
    (cd "$OUT/packages" && npm pack --silent --no-fund "$name@$version" >/dev/null)
  fi
  got="$(integrity "$file")"
  if [ "$got" != "$sum" ]; then
    rm -f "$file"
    say "$name@$version: integrity $got is not the pinned $sum"
    exit 1
  fi
  echo ".validator/packages/$name-$version.tgz" >>"$OUT/packages.txt.tmp"
done
mv "$OUT/packages.txt.tmp" "$OUT/packages.txt"

# -- the validator: offline from ~/.m2 when it has everything, else from Maven Central --
rm -rf "$OUT/build" "$OUT/lib"
if ! mvn -B -q -o -f "$POM" package >"$OUT/mvn-offline.log" 2>&1; then
  say "building tools/validator (Maven Central into ~/.m2; takes a minute the first time)"
  rm -rf "$OUT/build" "$OUT/lib"
  mvn -B -q -f "$POM" package
fi
rm -f "$OUT/mvn-offline.log"
echo "$want" >"$OUT/stamp"
say "built .validator/build/phrx-fhir-validator.jar ($(ls "$OUT/lib" | wc -l) jars in .validator/lib)"
