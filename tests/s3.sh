# Sourced by tests/run.sh after the Python venv exists: starts a private
# S3-compatible server (moto's server mode, from the venv) on 127.0.0.1 for
# the stack tests, and exports WEFT_TEST_S3 (its URL) with the AWS_*
# variables weft's S3 artifact store reads. stop_s3 stops it.

s3_port="${WEFT_TEST_S3_PORT:-54330}"
s3_log="$(mktemp /tmp/weft-s3.XXXXXX)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$s3_log" 2>&1 &
s3_pid=$!
s3_up() {
    "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3_port/', timeout=1)" 2>/dev/null
}
for _ in $(seq 1 100); do
    s3_up && break
    sleep 0.1
done
if ! s3_up; then
    echo "the S3 test server did not start:" >&2
    cat "$s3_log" >&2
    return 1
fi

stop_s3() {
    kill "$s3_pid" 2>/dev/null || true
    rm -f "$s3_log"
}

export WEFT_TEST_S3="http://127.0.0.1:$s3_port"
export AWS_ACCESS_KEY_ID=weft-test AWS_SECRET_ACCESS_KEY=weft-test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="$WEFT_TEST_S3" AWS_ALLOW_HTTP=true
echo "S3 for the tests: $WEFT_TEST_S3" >&2
