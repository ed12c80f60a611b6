# Shared by the image builds under ci/images: build a Docker image from
# Debian packages (mmdebstrap minbase, then `docker import`), with no
# registry. Idempotent: skipped when an image with the same recipe hash
# (label persistkit.recipe) exists. Source it, then call debian_image.
#
#   PERSISTKIT_DEBIAN_SUITE    Debian suite (default bookworm)
#   PERSISTKIT_DEBIAN_SOURCES  apt sources file to build from
#                              (default: this machine's apt configuration)

# debian_image IMAGE ENTRYPOINT PACKAGES RECIPE [MMDEBSTRAP-ARG …] -- [DOCKER-CHANGE …]
# Prints IMAGE on stdout.
debian_image() {
	local image="$1" entrypoint="$2" packages="$3" recipe="$4"
	shift 4
	local mm=() changes=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do mm+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	changes=("$@")
	local suite="${PERSISTKIT_DEBIAN_SUITE:-bookworm}"
	local lib="${BASH_SOURCE[0]}"
	local hash
	hash="$(printf '%s\n' "$(cat "$lib" "$entrypoint")" "$recipe" "$suite" "$packages" "${mm[@]}" "${changes[@]}" |
		sha256sum | cut -c1-16)"

	local have
	have="$(docker image inspect "$image" --format '{{ index .Config.Labels "persistkit.recipe" }}' 2>/dev/null || true)"
	if [ "$have" = "$hash" ]; then
		echo "image $image is up to date (recipe $hash); skipping the build" >&2
		echo "$image"
		return 0
	fi

	# The mirror comes from this machine's apt configuration, never from here.
	local sources
	sources="$(mktemp)"
	if [ -n "${PERSISTKIT_DEBIAN_SOURCES:-}" ]; then
		cat "$PERSISTKIT_DEBIAN_SOURCES" > "$sources"
	else
		{
			[ -f /etc/apt/sources.list ] && grep -E '^\s*deb\s' /etc/apt/sources.list || true
			for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && grep -E '^\s*deb\s' "$f" || true; done
		} > "$sources.list"
		if [ -s "$sources.list" ]; then
			cat "$sources.list" > "$sources"
		else
			for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && { cat "$f"; echo; }; done > "$sources"
		fi
		rm -f "$sources.list"
	fi
	if [ ! -s "$sources" ]; then
		rm -f "$sources"
		echo "error: no apt sources found; set PERSISTKIT_DEBIAN_SOURCES" >&2
		return 1
	fi
	command -v mmdebstrap >/dev/null || {
		rm -f "$sources"
		echo "error: mmdebstrap is missing (ci/setup installs it)" >&2
		return 1
	}

	echo "building $image from $packages on Debian $suite (recipe $hash) …" >&2
	local start change_args=()
	start=$(date +%s)
	for c in "${changes[@]}"; do change_args+=(--change "$c"); done
	mmdebstrap --quiet --variant=minbase --include="$packages" \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--customize-hook="copy-in $entrypoint /usr/local/bin" \
		--customize-hook="chmod 0755 \"\$1/usr/local/bin/$(basename "$entrypoint")\"" \
		"${mm[@]}" \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
		"$suite" - "$sources" |
		docker import "${change_args[@]}" --change "LABEL persistkit.recipe=$hash" - "$image" >/dev/null
	local status=$?
	rm -f "$sources"
	[ $status -eq 0 ] || return $status
	echo "built $image in $(( $(date +%s) - start )) s" >&2
	echo "$image"
}
