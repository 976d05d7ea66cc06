#!/bin/sh
# Regenerates the CMP vectors in this folder with the system's `openssl cmp` (OpenSSL 3.0)
# and its built-in mock server (-use_mock_srv). See PROVENANCE.md. Keys are EC P-256.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key root.key
openssl req -x509 -new -key root.key -subj "/CN=CMP Vector Root" -days 36500 -sha256 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out root.pem
issue() {  # issue NAME SUBJECT EXTENSIONS SERIAL [KEY]
  if [ $# -ge 5 ]; then cp "$5" "$1.key"; else key "$1.key"; fi
  openssl req -new -key "$1.key" -subj "$2" -out "$tmp/$1.csr"
  printf '%s\n' "$3" >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA root.pem -CAkey root.key -set_serial "$4" -days 36500 -sha256 \
    -extfile "$tmp/$1.ext" -out "$1.pem" 2>/dev/null
}
issue server "/CN=CMP Vector Server" "keyUsage=critical,digitalSignature" 2
issue client "/CN=CMP Vector Client" "keyUsage=critical,digitalSignature" 3
key new.key  # the key every request asks to certify; the mock answers with issued.pem, its certificate
issue issued "/CN=CMP Vector Issued" "keyUsage=critical,digitalSignature" 4 new.key
rm issued.key
openssl req -new -key new.key -subj "/CN=CMP Vector P10" -out p10.csr

# Common options: the mock server answers with issued.pem; replies by MAC use the same secret.
mock_mac="-use_mock_srv -srv_ref vector -srv_secret pass:vector-secret -rsp_cert issued.pem -rsp_capubs root.pem"
mock_sig="-use_mock_srv -srv_cert server.pem -srv_key server.key -srv_trusted root.pem -rsp_cert issued.pem -rsp_capubs root.pem"
mac="-ref vector -secret pass:vector-secret -recipient /CN=CMP-Vector-CA"
sig="-cert client.pem -key client.key -trusted root.pem -srvcert server.pem"

run() {  # run PREFIX PROT-OPTIONS MOCK-OPTIONS CMD-OPTIONS... (saves PREFIX.req/.rsp and certConf/pkiConf)
  local prefix=$1 r_prot=$2 r_mock=$3; shift 3
  saved "$r_prot" "$r_mock" "${prefix}.req.der,${prefix}.certConf.der" "${prefix}.rsp.der,${prefix}.pkiConf.der" "$@"
}
saved() {  # saved PROT-OPTIONS MOCK-OPTIONS REQUEST-FILES RESPONSE-FILES CMD-OPTIONS...
  local s_prot=$1 s_mock=$2 requests=$3 responses=$4; shift 4
  # shellcheck disable=SC2086
  openssl cmp $s_prot $s_mock -batch -verbosity 3 -certout "$tmp/out.pem" -reqout "$requests" -rspout "$responses" "$@"
}
for p in mac sig; do
  if [ $p = mac ]; then prot=$mac mock=$mock_mac; else prot=$sig mock=$mock_sig; fi
  run "ir-$p" "$prot" "$mock" -cmd ir -newkey new.key -subject "/CN=CMP Vector Issued"
  run "cr-$p" "$prot" "$mock" -cmd cr -newkey new.key -subject "/CN=CMP Vector Issued"
  run "p10cr-$p" "$prot" "$mock" -cmd p10cr -csr p10.csr
  run "kur-$p" "$prot" "$mock" -cmd kur -newkey new.key -oldcert issued.pem
  run "rr-$p" "$prot" "$mock" -cmd rr -oldcert issued.pem -revreason 1
  run "genm-$p" "$prot" "$mock" -cmd genm -infotype caCerts
  run "genm-template-$p" "$prot" "$mock" -cmd genm -infotype certReqTemplate
  run "ir-implicit-$p" "$prot" "$mock -grant_implicitconf" -cmd ir -newkey new.key \
    -subject "/CN=CMP Vector Issued" -implicit_confirm
  # the mock answers with an error message; openssl exits 1 for it, which is the point
  run "error-$p" "$prot" "$mock -send_error" -cmd cr -newkey new.key -subject "/CN=CMP Vector Issued" || true
  saved "$prot" "$mock -poll_count 2 -check_after 0" "poll-$p.ir.der,poll-$p.pollReq.der" \
    "poll-$p.ip-waiting.der,poll-$p.pollRep.der" -cmd ir -newkey new.key -subject "/CN=CMP Vector Issued"
done
