#!/usr/bin/env bash
# Refuses a release whose versions or image names disagree, before anything is pushed:
#   scripts/release-check.sh TAG OWNER
# TAG must be v<crate version>; Chart.yaml's version and appVersion must be the crate version; the
# chart's default image must be what the release pushes, ghcr.io/OWNER/ferrolb with an empty tag
# (the chart's appVersion). CI runs it with the current version and OWNER ferrolb.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 TAG OWNER" >&2; exit 2; }
tag="$1"
owner="$(tr '[:upper:]' '[:lower:]' <<<"$2")"

crate="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
chart="$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/ferrolb/Chart.yaml)"
app="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/ferrolb/Chart.yaml)"
# The image block of values.yaml: its repository and tag keys.
repository="$(sed -n '/^image:/,/^[^ #]/s/^  repository: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/ferrolb/values.yaml)"
image_tag="$(sed -n '/^image:/,/^[^ #]/s/^  tag: *\(.*\)$/\1/p' charts/ferrolb/values.yaml)"

fail=0
problem() { echo "release-check: $*" >&2; fail=1; }
[ "$tag" = "v$crate" ] || problem "tag $tag is not v$crate (Cargo.toml version)"
[ "$chart" = "$crate" ] || problem "Chart.yaml version $chart is not $crate"
[ "$app" = "$crate" ] || problem "Chart.yaml appVersion $app is not $crate"
[ "$repository" = "ghcr.io/$owner/ferrolb" ] \
    || problem "values.yaml image.repository $repository is not ghcr.io/$owner/ferrolb, where the release pushes"
[ "$image_tag" = '""' ] || problem "values.yaml image.tag $image_tag is not \"\" (the chart's appVersion)"
[ -f LICENSE ] && grep -q 'Apache License' LICENSE && grep -q '^license = "Apache-2.0"$' Cargo.toml \
    || problem "LICENSE does not match Cargo.toml's license"
[ "$fail" -eq 0 ] && echo "release-check: $tag: crate, chart and image ghcr.io/$owner/ferrolb:$crate agree"
exit "$fail"
