#!/usr/bin/python3
"""stream_test.py -- the TSM viewer follows a live stream of online refine
(web/tsm_live.js, docs/streaming.md) in a real browser: a client streams snippets one
at a time into solad while the page, which connected mid-stream, draws the TSM of the
refined snippets handed out after it connected; the map it holds equals the TSM
computed here from the client's own replies, and it says when the stream ends.

    SOLA_BIN=build /usr/bin/python3 tests/web/stream_test.py

Exit 0 pass, 1 fail, 77 skip (a tool is missing; under CI=true that fails instead)."""
import io
import os
import shutil
import sys
import tempfile
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser as B  # noqa: E402

B.require_tools()

BIN = os.environ.get('SOLA_BIN') or os.path.abspath('build')
SRC = os.environ.get('SOLA_SRC') or os.path.abspath('.')
ART = os.environ.get('WEB_ARTIFACTS') or os.path.join(BIN, 'web-artifacts')
DEADLINE_S = 300


def main(c, tmp):
    import numpy as np
    sd = B.Solad(BIN, tmp, ART, log='solad-stream.log')
    os.makedirs(os.path.join(sd.data, 'models', 'cam'))
    # a PyTorch fixture: C = 32, k1 = 5, k2 = 3 (R = 3), not the identity
    shutil.copy(os.path.join(SRC, 'tests', 'data', 'ref', 'k5k3.safetensors'),
                os.path.join(sd.data, 'models', 'cam', '1.safetensors'))
    sd.start()
    b = B.Browser(tmp, ART)
    try:
        def chunk(x, **flags):
            buf = io.BytesIO()
            np.save(buf, np.asarray(x, dtype='<f4').reshape(-1, 32))
            q = '&'.join(['model=cam', 'sequence_id=cam-live'] + [f'{k}=1' for k in flags])
            rq = urllib.request.Request(f'{sd.url}/refine?{q}', data=buf.getvalue(), method='POST',
                                        headers={'Content-Type': 'application/x-npy'})
            with urllib.request.urlopen(rq, timeout=30) as r:
                off = int(r.headers['X-Sequence-Offset'])
                return off, np.load(io.BytesIO(r.read()))

        x = np.random.default_rng(3).standard_normal((40, 32)).astype('<f4')
        off, rows = chunk(x[:5], sequence_start=True)       # R = 3: rows 0 and 1, before the page
        c.check(off == 0 and len(rows) == 2, f'the stream opens and hands out 2 rows (got {len(rows)})')
        b.go(sd.url + '/#/tsm')
        b.click('#tsm-live-refresh')
        b.wait_js("return [...document.querySelectorAll('#tsm-live-stream option')].some(o => o.value === 'cam-live')",
                  'the open stream listed')
        b.select('#tsm-live-stream', 'cam-live')
        b.click('#tsm-live-follow')
        B.until(lambda: sd.metric(r'^solad_streams_watchers$') == 1, 'the page following the stream')
        got = []
        for t in range(5, 40):
            o, r = chunk(x[t:t + 1])
            got.append((o, r))
        o, r = chunk(x[:0], sequence_end=True)
        got.append((o, r))
        b.wait_js("return document.getElementById('tsm-live-card').dataset.ended === 'ended'",
                  'the page saying the stream ended')
        y = np.concatenate([r for _, r in got])
        c.check(got[0][0] == 2 and len(y) == 38, f'the client got rows 2..39 after the page connected ({len(y)})')
        T = int(b.js("return Number(document.getElementById('tsm-live').dataset.t)"))
        first = int(b.js("return Number(document.getElementById('tsm-live').dataset.first)"))
        c.check(T == 38 and first == 2, f'the map holds the 38 snippets handed out since it connected, from 2 (T {T}, first {first})')
        drawn = np.array(b.js("return Array.from(document.getElementById('tsm-live').tsm)"), dtype=np.float64).reshape(T, T)
        u = y.astype(np.float64) / (np.linalg.norm(y.astype(np.float64), axis=1, keepdims=True) + 1e-8)
        err = float(np.abs(drawn - u @ u.T).max())
        c.check(err < 1e-5, f'the drawn map is the TSM of the refined rows the client got (max error {err:.2e})')
        status = b.text('#tsm-live-status')
        c.check('snippets 2 … 39' in status and 'ended' in status, f'the status says what is drawn and that it ended: {status!r}')
        B.until(lambda: sd.metric(r'^solad_streams_watchers$') == 0, 'the page letting go of the stream')
        b.shot('tsm-live')
        errs = [e for e in b.errors()]
        c.check(not errs, 'no console errors' + (': ' + ' | '.join(errs[:3]) if errs else ''))
    finally:
        b.quit()
        rc = sd.stop()
        c.check(rc == 0, f'solad exits 0 on SIGTERM (got {rc})')


if __name__ == '__main__':
    os.makedirs(ART, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='sola-stream-web-')
    c = B.Checks()
    timer = threading.Timer(DEADLINE_S, lambda: (print(f'not ok - the run took over {DEADLINE_S} s', flush=True),
                                                os._exit(1)))
    timer.daemon = True
    timer.start()
    try:
        main(c, tmp)
    except Exception as e:  # noqa: BLE001 -- any failure is reported as a failed check
        import traceback
        traceback.print_exc(file=sys.stdout)
        c.error(f'{type(e).__name__}: {e}')
    timer.cancel()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f'{c.passed} passed, {c.failed} failed')
    sys.exit(1 if c.failed else 0)
