#!/usr/bin/env bash
# tests/integration/export_tls.sh - TLS on a store's TCP export
# (export_tls, NBD_OPT_STARTTLS over GnuTLS) with clients nobody here
# wrote: nbdinfo and nbdcopy (libnbd) and qemu-img, with a psktool key
# file and with X.509 certificates made by certtool here.
#
# Checks:
#  - csnap.conf: export_tls = require in [global], export_tls_psk in
#    [store s] (the store inherits the mode); a store asking for TLS with
#    no credentials, or a PSK file that is not psktool's format, is
#    refused at start with a one-line reason;
#  - export = tcp with TLS also listens on the unix socket, which this
#    node's own tools use: csnap send of a snapshot works with TLS
#    required on TCP;
#  - PSK: nbdinfo over nbds://, nbdinfo --list, nbdcopy in and out over
#    TLS; what was written over TLS reads back identical over the unix
#    socket (which stays plain); qemu-img convert over TLS (tls-creds-psk)
#    reads the same bytes;
#  - require: plain nbdinfo fails and learns no export name or size, and
#    at the wire level (export_tls.py require) every option but STARTTLS
#    and ABORT gets ERR_TLS_REQD;
#  - a wrong key and an unknown user are refused, and the export goes on
#    serving;
#  - X.509 with export_tls_verify_peer (command-line overrides, a second
#    export): nbdinfo with a client certificate works, without one it is
#    refused; export_tls = on also serves plain clients;
#  - hostile TLS (export_tls.py hostile): garbage instead of a ClientHello,
#    a cut ClientHello, STARTTLS twice, a client without a certificate,
#    and a client silent after STARTTLS, closed by the handshake deadline.
# san: yes
. "$(dirname "$0")/../functions.sh"
requires nbdinfo nbdcopy qemu-img certtool psktool

cluster_start 1 64M
origin_fill zero 64M
store_init
d=$CLUSTER_DIR
addr=$(node_addr 1)
conf=$(node_conf 1)
start_master 1 --grace-ms 300

echo "== keys and certificates"
psktool -u alice -p "$d/keys.psk" >/dev/null || fail "psktool"
psktool -u alice -p "$d/wrong.psk" >/dev/null || fail "psktool (wrong key)"
psktool -u mallory -p "$d/mallory.psk" >/dev/null || fail "psktool (unknown user)"
mkdir -p "$d/qemu-psk" && cp "$d/keys.psk" "$d/qemu-psk/keys.psk"
mkdir -p "$d/pki" "$d/client"
cat >"$d/ca.info" <<EOF
cn = csnap test CA
ca
cert_signing_key
expiration_days = 2
EOF
cat >"$d/server.info" <<EOF
organization = csnap test
cn = $addr
ip_address = $addr
tls_www_server
encryption_key
signing_key
expiration_days = 2
EOF
cat >"$d/client.info" <<EOF
cn = client
tls_www_client
encryption_key
signing_key
expiration_days = 2
EOF
gen() { certtool "$@" >/dev/null 2>>"$d/certtool.log" || fail "certtool $*: $(tail -3 "$d/certtool.log")"; }
gen --generate-privkey --key-type=ecdsa --outfile "$d/ca-key.pem"
gen --generate-self-signed --load-privkey "$d/ca-key.pem" --template "$d/ca.info" \
  --outfile "$d/pki/ca-cert.pem"
for who in server client; do
  gen --generate-privkey --key-type=ecdsa --outfile "$d/$who-key.pem"
  gen --generate-certificate --load-privkey "$d/$who-key.pem" \
    --load-ca-certificate "$d/pki/ca-cert.pem" --load-ca-privkey "$d/ca-key.pem" \
    --template "$d/$who.info" --outfile "$d/$who-cert.pem"
done
cp "$d/server-key.pem" "$d/server-cert.pem" "$d/pki/"
cp "$d/pki/ca-cert.pem" "$d/client-key.pem" "$d/client-cert.pem" "$d/client/"

echo "== csnap.conf: TLS asked for without credentials, or a bad key file, is refused"
cp "$conf" "$d/conf.orig"
sed -i '/^\[global\]/a export_tls = require' "$conf"
out=$(node_run 1 timeout 20 "$C" export --socket "$d/never.sock" --tcp "$addr:0" s 2>&1) && fail "export without credentials started"
echo "$out" | grep -q 'export_tls = require needs export_tls_psk or export_tls_certificates' ||
  fail "no clear reason: $out"
echo "bad:key" >"$d/bad.psk"
echo "export_tls_psk = $d/bad.psk" >>"$conf"
out=$(node_run 1 timeout 20 "$C" export --socket "$d/never.sock" --tcp "$addr:0" s 2>&1) && fail "export with a bad PSK file started"
echo "$out" | grep -q "bad.psk:1: not username:hexkey" || fail "no clear reason: $out"
sed -i "s|^export_tls_psk = .*|export_tls_psk = $d/keys.psk|" "$conf"

# export = tcp from csnap.conf: with TLS it also listens on its unix
# socket, for this node's plain tools.  A free port, as the kernel gives it.
port=$($py -c 'import socket; s = socket.socket(); s.bind(("'"$addr"'", 0)); print(s.getsockname()[1])')
sed -i -e 's/^export = unix$/export = tcp/' -e "/^export = tcp/a export_port = $port" "$conf"
sock=$(export_sock 1)
start_export 1 "$sock" s
grep -q "^tcp port $port" "$(node_log 1 export)" || fail "the export is not on TCP port $port"
tls="nbds://alice@$addr:$port/origin?tls-psk-file=$d/keys.psk"

echo "== PSK: nbdinfo, nbdcopy in and out over TLS; the unix socket reads the same"
nbdinfo "$tls" >"$d/info" 2>&1 || fail "nbdinfo over TLS: $(cat "$d/info")"
grep -q 'with TLS' "$d/info" || fail "nbdinfo did not use TLS: $(cat "$d/info")"
grep -q 'export-size: 67108864' "$d/info" || fail "nbdinfo over TLS: wrong size"
nbdinfo --list "nbds://alice@$addr:$port?tls-psk-file=$d/keys.psk" | grep -q 'export="origin"' ||
  fail "nbdinfo --list over TLS"
head -c 48M /dev/urandom >"$d/r1"
nbdcopy "$d/r1" "$tls" || fail "nbdcopy over TLS (write)"
nbdcopy "$tls" "$d/b1" || fail "nbdcopy over TLS (read)"
cmp -n 50331648 "$d/r1" "$d/b1" || fail "read over TLS differs from what was written"
nbdcopy "nbd+unix:///origin?socket=$sock" "$d/u1" || fail "nbdcopy over the unix socket"
cmp -n 50331648 "$d/r1" "$d/u1" || fail "written over TLS, read over the unix socket: differs"
echo "written over TLS, read back identical over TLS and over the unix socket"

echo "== this node's tools use the unix socket: csnap send of a snapshot"
cs 1 snapshot create s t1 >/dev/null || fail "snapshot create t1"
wait_exported "$sock" t1
cs 1 send s t1 >"$d/t1.stream" 2>"$d/send.err" || fail "csnap send with TLS required on TCP: $(cat "$d/send.err")"
[ "$(stat -c %s "$d/t1.stream")" -gt 50000000 ] || fail "csnap send: short stream"

echo "== qemu-img over TLS (tls-creds-psk)"
qemu-img convert -O raw \
  --object "tls-creds-psk,id=tls0,endpoint=client,dir=$d/qemu-psk,username=alice" \
  --image-opts "driver=nbd,host=$addr,port=$port,export=origin,tls-creds=tls0" "$d/q1" ||
  fail "qemu-img convert over TLS"
cmp "$d/q1" "$d/u1" || fail "qemu-img over TLS read different bytes"

echo "== require: a plain client learns nothing"
if nbdinfo --list "nbd://$addr:$port" >"$d/plain" 2>&1; then fail "plain nbdinfo --list worked"; fi
cat "$d/plain"
if grep -qE 'export=|export-size' "$d/plain"; then fail "plain client learnt an export"; fi
if nbdinfo "nbd://$addr:$port/origin" >"$d/plain" 2>&1; then fail "plain nbdinfo worked"; fi
if grep -q 'export-size' "$d/plain"; then fail "plain client learnt the size"; fi
$py "$src/tests/integration/export_tls.py" require "$addr" "$port" || fail "wire-level checks (require)"

echo "== wrong key, unknown user: refused; the export goes on"
if nbdinfo "nbds://alice@$addr:$port/origin?tls-psk-file=$d/wrong.psk" >"$d/wrong" 2>&1; then
  fail "a wrong key was accepted"
fi
if nbdinfo "nbds://mallory@$addr:$port/origin?tls-psk-file=$d/mallory.psk" >"$d/wrong" 2>&1; then
  fail "an unknown user was accepted"
fi
grep -q 'TLS handshake failed' "$(node_log 1 export)" || fail "no handshake failure logged"
nbdinfo "$tls" >/dev/null || fail "nbdinfo over TLS after refused clients"

echo "== X.509 (export_tls = on, verify_peer): certificates from certtool"
cp "$d/conf.orig" "$conf"		# no TLS in the file: all from the command line
sock2=$d/s2.sock
start_export 1 "$sock2" --log export2 --socket "$sock2" --tcp "$addr:0" --tls on \
  --tls-certificates "$d/pki" --tls-verify-peer s
port2=$(sed -n 's/^tcp port //p' "$(node_log 1 export2)")
[ -n "$port2" ] || fail "no TCP port in the second export's log"
x509="nbds://$addr:$port2/origin?tls-certificates=$d/client"
nbdinfo "$x509" >"$d/info2" 2>&1 || fail "nbdinfo with a client certificate: $(cat "$d/info2")"
grep -q 'with TLS' "$d/info2" || fail "nbdinfo did not use TLS (X.509)"
nbdcopy "$x509" "$d/x1" || fail "nbdcopy over TLS (X.509)"
cmp "$d/x1" "$d/u1" || fail "X.509 read differs"
mkdir -p "$d/nocert" && cp "$d/pki/ca-cert.pem" "$d/nocert/"
if nbdinfo "nbds://$addr:$port2/origin?tls-certificates=$d/nocert" >/dev/null 2>&1; then
  fail "a client without a certificate was accepted (verify_peer)"
fi
nbdinfo "nbd://$addr:$port2/origin" >"$d/plain2" 2>&1 || fail "export_tls = on refused a plain client"
grep -q 'without TLS' "$d/plain2" || fail "plain client: $(cat "$d/plain2")"

echo "== hostile TLS clients"
$py "$src/tests/integration/export_tls.py" hostile "$addr" "$port2" "$d/client" "$sock2" ||
  fail "hostile TLS clients"
grep -q 'handshake not finished in time' "$(node_log 1 export2)" ||
  fail "the stalled handshake was not ended by the deadline"
nbdinfo "$x509" >/dev/null || fail "nbdinfo over TLS after the hostile clients"

no_sanitizer_reports
check_store
echo "export_tls: ok"
