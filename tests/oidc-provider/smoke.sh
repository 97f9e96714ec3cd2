#!/usr/bin/env bash
# Hand-run smoke test of tests/oidc-provider/provider.mjs (not part of CI): starts both
# providers, runs the authorization-code + PKCE flow with curl against them and checks the
# ID tokens. Needs node, curl, python3 and the npm deps (scripts/install-deps.sh test).
# Usage: tests/oidc-provider/smoke.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
modules="${FRAMEHOUSE_NODE_CACHE:-$HOME/.cache/framehouse-node}/oidc-provider/node_modules"
[ -d "$modules/oidc-provider" ] || { echo "no $modules/oidc-provider: run scripts/install-deps.sh test" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/framehouse-oidc-smoke.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

mkdir "$tmp/run"
cp "$here/provider.mjs" "$tmp/run/provider.mjs"
ln -s "$modules" "$tmp/run/node_modules"
mkfifo "$tmp/stdin"
exec {hold}<>"$tmp/stdin"
OIDC_DEBUG=${OIDC_DEBUG:-0} node "$tmp/run/provider.mjs" <"$tmp/stdin" >"$tmp/out" 2>"$tmp/log" {hold}>&- &
pid=$!
for _ in $(seq 300); do
  grep -q '^{' "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
grep -q '^{' "$tmp/out" || { echo "provider did not start" >&2; cat "$tmp/log" >&2; exit 1; }
good=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["good"])' <"$tmp/out")
rogue=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["rogue"])' <"$tmp/out")
echo "providers: good=$good rogue=$rogue"

redirect_uri="http://127.0.0.1:45678/api/v1/auth/oidc/good/callback"
b64url() { python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(sys.stdin.buffer.read()).rstrip(b"=").decode())'; }

# flow ISSUER CLIENT LOGIN_HINT NONCE [COOKIE_JAR] -> prints the token response JSON; the redirect chain to stderr.
flow() {
  local issuer=$1 client=$2 login=$3 nonce=$4
  local jar=${5:-"$tmp/jar.$RANDOM"} verifier challenge state url loc code
  verifier=$(head -c 32 /dev/urandom | b64url)
  challenge=$(python3 -c 'import base64,hashlib,sys; print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$verifier")
  state=$(head -c 16 /dev/urandom | b64url)
  local auth
  auth=$(python3 - "$issuer" <<'PY'
import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1] + "/.well-known/openid-configuration"))["authorization_endpoint"])
PY
)
  url="$auth?$(python3 -c 'import sys,urllib.parse as u; print(u.urlencode(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
    response_type code client_id "$client" redirect_uri "$redirect_uri" scope "${scope:-openid email profile groups}" \
    state "$state" nonce "$nonce" code_challenge "$challenge" code_challenge_method S256 login_hint "$login")"
  for _ in $(seq 10); do
    echo "  GET $url" >&2
    loc=$(curl -sS -o /dev/null -b "$jar" -c "$jar" -w '%{http_code} %{redirect_url}' "$url")
    echo "   -> $loc" >&2
    case "${loc#* }" in
      "$redirect_uri"*) url=${loc#* }; break ;;
      http*) url=${loc#* } ;;
      *) echo "unexpected response: $loc" >&2; curl -sS -b "$jar" "$url" >&2; return 1 ;;
    esac
  done
  case "$url" in "$redirect_uri"*) ;; *) echo "never reached the redirect_uri" >&2; return 1 ;; esac
  python3 - "$url" "$state" <<'PY' >"$tmp/code"
import sys, urllib.parse as u
q = dict(u.parse_qsl(u.urlsplit(sys.argv[1]).query))
assert q.get("state") == sys.argv[2], f"state mismatch: {q}"
assert "code" in q, f"no code: {q}"
print(q["code"])
PY
  code=$(cat "$tmp/code")
  local token_endpoint
  token_endpoint=$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]+"/.well-known/openid-configuration"))["token_endpoint"])' "$issuer")
  curl -sS -f -u "$client:framehouse-secret" "$token_endpoint" \
    --data-urlencode grant_type=authorization_code --data-urlencode "code=$code" \
    --data-urlencode "redirect_uri=$redirect_uri" --data-urlencode "code_verifier=$verifier"
}

# check ISSUER TOKEN_JSON EXPECTED_NONCE KID_KNOWN(yes/no) [EXPECTED_CLAIMS_JSON]
check() {
  python3 - "$@" <<'PY'
import base64, json, sys, urllib.request
issuer, tokens, nonce, kid_known = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
want = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
def part(s):
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
h, p, _ = tokens["id_token"].split(".")
header, claims = part(h), part(p)
print("  token response keys:", sorted(tokens))
print("  id_token header:", json.dumps(header))
print("  id_token claims:", json.dumps(claims, sort_keys=True))
conf = json.load(urllib.request.urlopen(issuer + "/.well-known/openid-configuration"))
jwks = json.load(urllib.request.urlopen(conf["jwks_uri"]))
kids = [k["kid"] for k in jwks["keys"]]
assert header["alg"] == "RS256", header
assert claims["iss"] == issuer, claims
assert claims["nonce"] == nonce, f"nonce {claims.get('nonce')!r} != {nonce!r}"
for k in ("sub", "email", "email_verified", "groups", "preferred_username", "name"):
    assert k in claims, f"missing {k}"
for k, v in want.items():
    assert claims[k] == v, f"{k}: {claims[k]!r} != {v!r}"
assert (header["kid"] in kids) == (kid_known == "yes"), f"kid {header['kid']} vs jwks {kids}"
print(f"  ok (kid {header['kid']} {'in' if kid_known == 'yes' else 'NOT in'} jwks {kids})")
PY
}

echo "== GOOD, framehouse, alice"
t=$(flow "$good" framehouse alice nonce-1)
check "$good" "$t" nonce-1 yes '{"sub":"alice","email":"alice@example.test","email_verified":true,"groups":["fh-users"]}'

echo "== GOOD, framehouse, admin-bob / unverified check on unverified-carol"
t=$(flow "$good" framehouse admin-bob nonce-2)
check "$good" "$t" nonce-2 yes '{"sub":"admin-bob","groups":["fh-admins"],"email_verified":true}'
t=$(flow "$good" framehouse unverified-carol nonce-3)
check "$good" "$t" nonce-3 yes '{"sub":"unverified-carol","email_verified":false}'

echo "== GOOD, framehouse-badnonce"
t=$(flow "$good" framehouse-badnonce alice nonce-4)
check "$good" "$t" tampered-nonce yes

echo "== ROGUE, framehouse"
t=$(flow "$rogue" framehouse alice nonce-5)
check "$rogue" "$t" nonce-5 no

echo "== GOOD, one cookie jar: alice, again alice (session reused), then admin-bob (re-login)"
t=$(flow "$good" framehouse alice nonce-6 "$tmp/jar.shared")
check "$good" "$t" nonce-6 yes '{"sub":"alice"}'
t=$(flow "$good" framehouse alice nonce-7 "$tmp/jar.shared")
check "$good" "$t" nonce-7 yes '{"sub":"alice"}'
t=$(flow "$good" framehouse admin-bob nonce-8 "$tmp/jar.shared")
check "$good" "$t" nonce-8 yes '{"sub":"admin-bob","groups":["fh-admins"]}'

echo "== GOOD, scope openid only: no email/profile/groups claims in the ID token"
t=$(scope=openid flow "$good" framehouse alice nonce-9)
python3 - "$t" <<'PY2'
import base64, json, sys
p = json.loads(sys.argv[1])["id_token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
print("  id_token claims:", json.dumps(claims, sort_keys=True))
assert not {"email", "groups", "name", "preferred_username"} & set(claims), claims
print("  ok")
PY2
echo "== GOOD, no login_hint -> 400 at the interaction"
jar="$tmp/jar.nohint"
url="$good/auth?response_type=code&client_id=framehouse&redirect_uri=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))' "$redirect_uri")&scope=openid&state=s&nonce=n&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
status=$(curl -sS -o /dev/null -L -b "$jar" -c "$jar" -w '%{http_code}' "$url")
[ "$status" = 400 ] || { echo "expected 400 without login_hint, got $status" >&2; exit 1; }
echo "  ok (400)"

echo "== GOOD, no PKCE -> error redirect"
loc=$(curl -sS -o /dev/null -w '%{redirect_url}' "$good/auth?response_type=code&client_id=framehouse&redirect_uri=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))' "$redirect_uri")&scope=openid&state=s&nonce=n&login_hint=alice")
case "$loc" in *error=invalid_request*) echo "  ok ($loc)" ;; *) echo "expected invalid_request, got $loc" >&2; exit 1 ;; esac

echo "== stdin EOF stops the provider"
exec {hold}>&-
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "provider still running after stdin closed" >&2; exit 1; fi
pid=
echo "  ok"
echo "smoke: all checks passed"
