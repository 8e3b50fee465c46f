#!/usr/bin/python3
"""live_test.py -- the page while things move, in headless chromium against a real
solad (see browser.py):

  1. an open job page with epochs finishing at about 100/s (a tiny dataset and model)
     makes at most a few requests per second -- counted by solad itself
     (solad_http_requests_total) -- its main thread has no long task over 200 ms, and
     it still draws every epoch;
  2. a late reply (a record fetched while the job ran, arriving after the final
     state) does not put a finished job back to running;
  3, 4. a failed job (NaN in the data) and an interrupted one: the failure box says
     what happened and what to press, never "null", never the API call, no "upload
     longer items" for a NaN, the chart says why it is empty;
  5. the daemon restarts: the job page follows its job to "interrupted" and Resume
     works; then each view, opened while solad is down, recovers by itself when it
     comes back, the header says so from real request outcomes, banners do not pile up.

    SOLA_BIN=build /usr/bin/python3 tests/web/live_test.py

Exit 0 pass, 1 fail, 77 skip (a tool is missing; under CI=true that fails)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser as B  # noqa: E402

B.require_tools()

BIN = os.environ.get('SOLA_BIN') or os.path.abspath('build')
ART = os.environ.get('WEB_ARTIFACTS') or os.path.join(BIN, 'web-artifacts')
DEADLINE_S = 420
FAST_EPOCHS = 1200
MAX_RPS = 3.0      # "at most a few requests per second"
MAX_LONG_MS = 200  # no long task over 200 ms

# Installed before the page's own scripts: long tasks (the browser's own measure of
# main-thread work over 50 ms) collected from the start.
PROBE = """
window.__long = [];
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push([e.startTime, e.duration]); })
    .observe({type: 'longtask', buffered: true});
} catch (e) { window.__long = null; }
"""


def upload_dir(sd, ds, d):
    for f in sorted(os.listdir(d)):
        if f.endswith('.npy'):
            with open(os.path.join(d, f), 'rb') as fh:
                sd.api('PUT', f'/datasets/{ds}/items/{f[:-4]}', raw=fh.read(), ctype='application/x-npy')


def state(b):
    return b.js("const c = document.querySelector('#loss-chart'); return c ? c.dataset.state : null")


def main(c, tmp):
    import numpy as np
    sola = os.path.join(BIN, 'sola')
    subprocess.run([sola, 'synth', '-o', os.path.join(tmp, 'tiny'), '--videos', '4', '--dim', '8', '--length', '40',
                    '--seed', '2'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helptext = subprocess.run([os.path.join(BIN, 'solad'), '--help'], capture_output=True, text=True).stdout
    extra = ['--job-queue', '8'] + (['--allow-nonfinite'] if '--allow-nonfinite' in helptext else [])
    # Training jobs pause 5 ms after each epoch: epochs still arrive at up to ~200/s (the
    # flood the page must coalesce), but the 1200-epoch job lasts >= 6 s, so the page's
    # few fixed requests (job, events, models) are not divided by a sub-second run, as
    # they were on a fast CI machine (3 requests in 0.9 s failed the 3/s bound).
    sd = B.Solad(BIN, tmp, ART, extra=extra, log='solad-live.log', env={'SOLAD_DEBUG_EPOCH_DELAY_MS': '5'})
    url = sd.start()
    upload_dir(sd, 'tiny', os.path.join(tmp, 'tiny', 'features'))
    b = B.Browser(tmp, ART)
    b.on_new_document(PROBE)
    expected = {'404': 0, '409': 0}
    try:
        # ---- 1. no flooding: epochs at ~100/s ---------------------------------------------
        b.go(url + '/#/jobs')
        b.wait_el('#train-form')
        job = sd.api('POST', '/train', {'dataset': 'tiny', 'epochs': FAST_EPOCHS, 'batch': 64, 'hidden': 8, 'lr': 0.003})
        jid = job['id']
        b.go(url + f'/#/jobs/{jid}')
        b.d.execute_cdp_cmd('Performance.enable', {})

        def thread_time():
            return {x['name']: x['value'] for x in b.d.execute_cdp_cmd('Performance.getMetrics', {})['metrics']}['ThreadTime']

        def cpu_sample():
            """(performance.now() in the page, the main thread's CPU seconds so far)."""
            return b.js('return performance.now()'), thread_time()
        pre = (float('-inf'), thread_time())  # before the document the probe watches
        b.d.refresh()  # a fresh document: the long-task probe sees everything from here
        b.wait_el('#loss-chart')
        samples = [pre, cpu_sample()]
        n0, t0 = sd.requests(), time.monotonic()
        deadline = t0 + 120
        while state(b) != 'succeeded':
            if time.monotonic() > deadline:
                raise TimeoutError(f'job {jid} did not finish on the page within 120 s')
            time.sleep(0.2)
            samples.append(cpu_sample())
        n1, t1 = sd.requests(), time.monotonic()
        samples.append(cpu_sample())
        rec = sd.api('GET', f'/jobs/{jid}')
        secs = t1 - t0
        # solad counts a request when it is answered: the event stream counts once it
        # ends, the /metrics reads of this test are excluded
        rate = (n1 - n0) / secs
        run_s = max(1.0, _dur(rec))
        # the epoch rate depends on the machine (and its load): reported, not asserted;
        # with deltas coalesced by solad the page's work does not grow with it
        c.check(len(rec['loss_history']) == FAST_EPOCHS,
                f'{FAST_EPOCHS} epochs in about {run_s:.0f} s ({FAST_EPOCHS / run_s:.0f} epochs/s by the job record; '
                f'load average {os.getloadavg()[0]:.1f})')
        c.check(rate <= MAX_RPS, f'the open job page made {n1 - n0} requests in {secs:.1f} s ({rate:.2f}/s; at most {MAX_RPS}/s)')
        time.sleep(0.3)
        samples.append(cpu_sample())
        # Long tasks are wall-clock: on a machine busy with other work the OS stretches
        # them. A task over the limit passes only when the main thread's CPU time across
        # it (sampled around it, an upper bound of the task's own) stays under the limit.
        long = b.js('return window.__long') or []
        over = []
        for start, dur in long:
            if dur <= MAX_LONG_MS:
                continue
            before = [x for x in samples if x[0] <= start]
            after = [x for x in samples if x[0] >= start + dur]
            bound = (after[0][1] - before[-1][1]) * 1000 if before and after else float('inf')
            over.append((start, dur, bound))
        worst = max(long or [[0, 0]], key=lambda x: x[1])
        used = samples[-1][1] - samples[0][1]
        c.check(all(bound <= MAX_LONG_MS for _, _, bound in over),
                f'no task of the page takes over {MAX_LONG_MS} ms of its main thread ({len(long)} tasks over 50 ms, longest '
                f'{worst[1]:.0f} ms of wall time' + (f'; the {len(over)} over {MAX_LONG_MS} ms used at most '
                f'{", ".join(f"{bd:.0f}" for _, _, bd in over)} ms of CPU (load average {os.getloadavg()[0]:.1f})' if over else '')
                + f'; the main thread used {used:.2f} s of CPU in {secs:.1f} s)')
        pts = int(b.js("return Number(document.getElementById('loss-chart').dataset.points)"))
        c.check(pts == FAST_EPOCHS, f'and every epoch is drawn ({pts} of {FAST_EPOCHS})')

        # ---- 2. a late reply does not reopen a finished job --------------------------------
        stale = dict(rec, state='running', finished=None, model_version=None, epoch=FAST_EPOCHS // 2,
                     loss_history=rec['loss_history'][:FAST_EPOCHS // 2])
        b.js("""const path = arguments[0], body = arguments[1], real = window.fetch;
            window.__staleServed = 0;
            window.fetch = function (u, o) {
              if (String(u) === path && !window.__staleServed) {
                window.__staleServed++;
                return new Promise((res) => setTimeout(() => res(new Response(body, {status: 200,
                  headers: {'Content-Type': 'application/json'}})), 300));
              }
              return real.apply(this, arguments);
            };""", f'/jobs/{jid}', json.dumps(stale))
        b.click('#job-reload')
        B.until(lambda: b.js('return window.__staleServed') == 1, 'the late reply to be served')
        time.sleep(0.8)
        c.check(state(b) == 'succeeded' and b.js("return document.getElementById('job-progress').value") == 1
                and int(b.js("return Number(document.getElementById('loss-chart').dataset.points)")) == FAST_EPOCHS,
                f'a late "running" reply leaves the finished job finished, with its whole curve (state {state(b)})')
        b.d.refresh()

        # ---- the trainer's warning: a collapse guard with a threshold that fires at once
        wj = sd.api('POST', '/train', {'dataset': 'tiny', 'epochs': 400, 'batch': 64, 'hidden': 8, 'collapse_ratio': 1e-6})
        b.go(url + f'/#/jobs/{wj["id"]}')
        B.until(lambda: not b.js("return document.getElementById('job-warnings').hidden"), 'the warning box', 60, 0.2)
        during = state(b)
        wt = b.text('#job-warnings')
        c.check('collapse guard fired at the end of epoch 1' in wt and 'stop_on_collapse' not in wt and 'Stop if the collapse guard fires' in wt,
                f'the collapse guard\'s warning is shown ({during}), in the page\'s words: {wt[:140]}')
        B.until(lambda: state(b) == 'succeeded', 'the warned job to finish', 60, 0.2)
        time.sleep(0.3)
        g = b.text('#job-guard')
        c.check('fired at epoch 1' in g and re.search(r'limit (1e-0?6|0\.000001)', g) and len(b.els('#job-warnings li')) == 1,
                f'the guard\'s numbers are in the Run card, the warning once: {g}')

        # ---- 3, 4. a failed job: NaN in the data -------------------------------------------
        arr = np.random.default_rng(3).standard_normal((40, 8)).astype(np.float32)
        arr[:, 3] = np.nan  # every window holds one
        nanf = os.path.join(tmp, 'nan.npy')
        np.save(nanf, arr)
        try:
            with open(nanf, 'rb') as fh:
                sd.api('PUT', '/datasets/bad/items/v0', raw=fh.read(), ctype='application/x-npy')
            nan_uploaded = True
        except RuntimeError as e:  # a daemon that refuses non-finite uploads (as it should)
            nan_uploaded = False
            print(f'# NaN upload refused: {e}')
        if nan_uploaded:
            fj = sd.api('POST', '/train', {'dataset': 'bad', 'epochs': 3, 'batch': 8, 'hidden': 8})
            b.go(url + f'/#/jobs/{fj["id"]}')
            B.until(lambda: state(b) in ('failed', 'succeeded'), 'the NaN job to end on the page', 60, 0.2)
            c.check(state(b) == 'failed', f'a job on NaN data fails (the page says {state(b)})')
            time.sleep(0.2)
            box = b.text('#job-error')
            c.check('null' not in box and 'NaN' in box and 'longer' not in box and '/' not in box.split('said:')[-1],
                    f'a NaN failure: the box names NaN, no "null", no "longer items", no file path: {box[:160]}')
            empty = b.js("return document.getElementById('loss-chart').dataset.empty")
            c.check('error' in empty and 'no loss yet' not in empty, f'the chart says why it is empty: {empty}')
        else:
            c.check(True, 'NaN uploads are refused by solad (the NaN failure box cannot be provoked this way)')

        # ---- 5. a restart while a job runs: the page follows it ---------------------------
        long_job = sd.api('POST', '/train', {'dataset': 'tiny', 'epochs': 100000, 'batch': 64, 'hidden': 8})
        lid = long_job['id']
        b.go(url + f'/#/jobs/{lid}')
        B.until(lambda: state(b) == 'running' and int(b.js("return Number(document.getElementById('loss-chart').dataset.points)")) > 3,
                'the long job running on the page', 60, 0.2)
        port = sd.port()
        rc = sd.stop()
        c.check(rc == 0, f'solad drains on SIGTERM with a job running (exit {rc})')
        B.until(lambda: b.el('#health').get_attribute('data-state') == 'down', 'the header to say solad is away', 15, 0.2)
        c.check(True, f'the header says so: {b.text("#health")}')
        sd.start(port)
        B.until(lambda: state(b) == 'interrupted', 'the page to follow the job to interrupted', 30, 0.2)
        time.sleep(0.3)
        box = b.text('#job-error')
        c.check('null' not in box and 'POST' not in box and 'press Resume' in box,
                f'the interrupted job says to press Resume (not the API call, no "null"): {box[:160]}')
        c.check(b.el('#job-resume').is_enabled(), 'Resume is enabled')
        B.until(lambda: b.el('#health').get_attribute('data-state') == 'up', 'the header to say solad is back', 15, 0.2)
        b.click('#job-resume')
        B.until(lambda: state(b) in ('queued', 'running'), 'the resumed job', 30, 0.2)
        c.check(b.els('#job-error')[0].get_attribute('hidden') is not None, 'resumed from the page, the box goes away')
        b.click('#job-cancel')
        b.wait_el('#confirm-dialog[open]')
        b.click('#confirm-cancel')
        time.sleep(0.5)
        c.check(sd.api('GET', f'/jobs/{lid}')['state'] in ('queued', 'running'), 'cancel asks first (and "Cancel" keeps the job)')
        b.click('#job-cancel')
        b.click('#confirm-ok')
        B.until(lambda: state(b) == 'cancelled', 'cancelled on the page', 30, 0.2)
        c.check(True, 'confirming cancels it, and the page follows')

        # ---- 5. every view recovers by itself --------------------------------------------
        views = [
            ('jobs', '#/jobs', '#jobs-list', lambda: b.els('#jobs-list tr[data-job]')),
            ('models', '#/models', '#view', lambda: b.els('[data-model="tiny"]')),
            ('datasets', '#/datasets', '#view', lambda: b.els('tr[data-dataset="tiny"]')),
            ('dataset', '#/datasets/tiny', '#view', lambda: b.els('#ds-frames')),
            ('start', '#/', '#home-steps', lambda: 'uploaded' in b.text('#home-steps')),
            ('job', f'#/jobs/{jid}', '#view', lambda: state(b) == 'succeeded'),
            ('compare', f'#/compare?jobs={jid},{lid}', '#view', lambda: len(b.els('#compare-legend li')) == 2),
            ('tsm', '#/tsm?dataset=tiny&item=video_0000', '#view', lambda: b.els('#tsm-refined')),
        ]
        most_banners = 0
        for name, h, _, ready in views:
            b.go(url + ('/#/models' if name == 'start' else '/#/'))  # another view first: this one is made anew
            time.sleep(0.5)
            sd.stop()
            b.go(url + '/' + h)
            B.until(lambda: b.el('#health').get_attribute('data-state') == 'down', f'{name}: the header to say down', 20, 0.2)
            time.sleep(1.0)
            most_banners = max(most_banners, len(b.els('#errors li')))
            sd.start(port)
            try:
                B.until(ready, f'{name} to recover', 30, 0.25)
                ok = True
            except TimeoutError:
                ok = False
            B.until(lambda: b.el('#health').get_attribute('data-state') == 'up', f'{name}: the header to say up', 20, 0.2)
            time.sleep(0.3)
            banners = len(b.els('#errors li'))
            c.check(ok and banners == 0, f'{name}: opened while solad was down, it recovers by itself '
                    f'({"content back" if ok else "still failing"}, {banners} banners left)')
        c.check(most_banners <= 1, f'banners do not pile up while solad is away (at most {most_banners})')

        unexpected = []
        for t in b.errors():
            if re.search(r'ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|net::ERR|Failed to fetch|status of 50[234]', t):
                continue  # provoked by the restarts
            m = re.search(r'status of (\d{3})', t)
            if m and expected.get(m.group(1), 0) > 0:
                expected[m.group(1)] -= 1
                continue
            unexpected.append(t)
        c.check(not unexpected, 'no other console errors' + (': ' + ' | '.join(unexpected[:5]) if unexpected else ''))
    finally:
        b.quit()
        rc = sd.stop()
        c.check(rc == 0, f'solad drains and exits 0 on SIGTERM (got {rc}; a sanitizer report makes it non-zero)')


def _dur(rec):
    from datetime import datetime
    f = '%Y-%m-%dT%H:%M:%SZ'
    try:
        return (datetime.strptime(rec['finished'], f) - datetime.strptime(rec['started'], f)).total_seconds()
    except (TypeError, ValueError):
        return 0.0


if __name__ == '__main__':
    os.makedirs(ART, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='sola-live-')
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
