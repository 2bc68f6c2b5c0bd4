"""The Python end of bench/lib.mjs's PythonWorker: one JSON request per stdin line, one JSON
reply per stdout line. A handler's exception becomes {"error": ...} so the Node side can say
what failed."""
import json
import sys
import traceback


def serve(handlers):
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = handlers[request["cmd"]](request)
        except Exception as error:  # reported to the Node side, which stops the benchmark
            traceback.print_exc(file=sys.stderr)
            reply = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
