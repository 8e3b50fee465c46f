"""browser.py -- what the browser tests share: a solad on a loopback port, Debian's
headless chromium driven through chromium-driver by python3-selenium (all Debian
packages: nothing is downloaded), small waits, checks and screenshots.

Exit codes follow ctest: 0 pass, 1 fail, 77 skip (SKIP_RETURN_CODE). A missing tool
is a skip, except under CI=true where it is a failure."""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SKIP = 77


def skip_or_fail(reason):
    """The tools of this test are missing: SKIP (77), or fail under CI=true."""
    if os.environ.get('CI') == 'true':
        print(f'FAIL browser test: {reason} (CI=true: a missing tool fails instead of skipping)')
        sys.exit(1)
    print(f'SKIP browser test: {reason}')
    sys.exit(SKIP)


CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
DRIVER = os.environ.get('CHROMEDRIVER', '/usr/bin/chromedriver')


def require_tools():
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f'no {CHROMIUM} (apt-get install chromium, or set CHROMIUM=)')
    if not os.access(DRIVER, os.X_OK):
        skip_or_fail(f'no {DRIVER} (apt-get install chromium-driver, or set CHROMEDRIVER=)')
    try:
        import selenium  # noqa: F401
    except ImportError:
        skip_or_fail('no python3 selenium module (apt-get install python3-selenium)')


class Checks:
    """ok/not ok lines as the test goes, a summary and an exit code at the end."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print(f'ok - {what}', flush=True)
        else:
            self.failed += 1
            print(f'not ok - {what}', flush=True)
        return cond

    def error(self, what):
        self.failed += 1
        print(f'not ok - {what}', flush=True)


def until(fn, what, timeout=30.0, every=0.1):
    """Polls fn() until it returns something true; raises naming what it waited for."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f'timed out after {timeout:g} s waiting for {what}')
        time.sleep(every)


class Solad:
    """A solad on 127.0.0.1 (port 0 = any free one; restart() keeps the port)."""

    def __init__(self, bin_dir, tmp, art, token=None, extra=(), log='solad.log', env=None):
        self.bin = bin_dir
        # extra environment (e.g. SOLAD_DEBUG_EPOCH_DELAY_MS: docs/jobs.md), kept on restart()
        self.env = dict(os.environ, **(env or {}))
        self.tmp = tmp
        self.token = token
        self.extra = list(extra)
        self.data = os.path.join(tmp, 'data')
        self.log = open(os.path.join(art, log), 'wb')
        self.p = None
        self.url = None
        if token:
            with open(os.path.join(tmp, 'token'), 'w') as f:
                f.write(token + '\n')

    def start(self, port=0):
        args = [os.path.join(self.bin, 'solad'), '--listen', f'127.0.0.1:{port}', '--data', self.data,
                '--train-threads', '1', '--rescan-interval', '1'] + self.extra
        if self.token:
            args += ['--token-file', os.path.join(self.tmp, 'token')]
        if not os.path.isdir(self.data):
            os.makedirs(self.data)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=self.env)
        t0 = time.monotonic()
        out = b''
        while time.monotonic() - t0 < 15:
            line = self.p.stdout.readline()
            if not line:
                break
            out += line
            m = re.search(rb'listening on (http://\S+)', out)
            if m:
                self.url = m.group(1).decode().rstrip('/')
                # keep draining stdout so solad never blocks on a full pipe
                self._drain = threading.Thread(target=self.p.stdout.read, daemon=True)
                self._drain.start()
                return self.url
        raise RuntimeError(f'solad did not start: {out.decode(errors="replace")}')

    def port(self):
        return int(self.url.rsplit(':', 1)[1])

    def stop(self, sig=signal.SIGTERM):
        """Stops solad; returns its exit status (negative: killed by that signal)."""
        if not self.p:
            return None
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = 'timeout'
        self._drain.join(5)
        self.p = None
        return rc

    def restart(self):
        port = self.port()
        rc = self.stop()
        self.start(port)
        return rc

    def api(self, method, path, body=None, raw=None, ctype=None):
        headers = {}
        if self.token:
            headers['Authorization'] = f'Bearer {self.token}'
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        elif raw is not None:
            data = raw
            headers['Content-Type'] = ctype or 'application/octet-stream'
        rq = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(rq, timeout=30) as r:
                t = r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f'{method} {path}: {e.code} {e.read()[:300]!r}') from None
        return json.loads(t) if t else {}

    def requests(self, exclude=r'route="/metrics"'):
        """Requests solad has answered so far (all routes but /metrics), by its own count."""
        with urllib.request.urlopen(self.url + '/metrics', timeout=10) as r:
            text = r.read().decode()
        total = 0
        for line in text.splitlines():
            if line.startswith('solad_http_requests_total{') and not re.search(exclude, line):
                total += int(float(line.rsplit(' ', 1)[1]))
        return total

    def requests_settled(self, exclude=r'route="/metrics"', quiet=0.5, timeout=15.0):
        """requests(exclude) once the count has not moved for `quiet` seconds: a page that
        shows its first error while the rest of its requests are still being answered
        (a redraw sends several at once) is not a place to start counting from."""
        n, since, end = self.requests(exclude), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < end:
            time.sleep(0.1)
            m = self.requests(exclude)
            if m != n:
                n, since = m, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return n
        raise AssertionError(f'solad kept answering requests for {timeout} s (count {n})')

    def metric(self, name_re):
        """Sum of the /metrics samples whose name{labels} matches name_re."""
        with urllib.request.urlopen(self.url + '/metrics', timeout=10) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith('#'):
                continue
            parts = line.rsplit(' ', 1)
            if len(parts) == 2 and re.search(name_re, parts[0]):
                total += float(parts[1])
        return total


class Browser:
    """Headless chromium as root: no sandbox, no GPU, nothing fetched in the background,
    a new empty profile."""

    def __init__(self, tmp, art, width=1280, height=800):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.art = art
        self.profile = tempfile.mkdtemp(prefix='profile-', dir=tmp)
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', f'--user-data-dir={self.profile}',
                  f'--window-size={width},{height}'):
            o.add_argument(a)
        o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
        self.d = webdriver.Chrome(service=Service(DRIVER), options=o)
        self.d.set_script_timeout(30)
        self.console = []  # console errors seen so far (read with errors())
        self.viewport(width, height)

    def quit(self):
        try:
            self.d.quit()
        except Exception:  # noqa: BLE001 -- the browser may already be gone
            pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # ---- page ----------------------------------------------------------------------
    def viewport(self, w, h):
        self.d.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                               {'width': w, 'height': h, 'deviceScaleFactor': 1, 'mobile': False})

    def go(self, url):
        self.d.get(url)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait_js(self, expr, what, timeout=30.0, *args):
        """Waits until the JS expression (a function body returning a value) is truthy."""
        return until(lambda: self.d.execute_script(expr, *args), what, timeout)

    def el(self, css):
        from selenium.webdriver.common.by import By
        return self.d.find_element(By.CSS_SELECTOR, css)

    def els(self, css):
        from selenium.webdriver.common.by import By
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait_el(self, css, timeout=20.0):
        return until(lambda: self.els(css), f'{css} on the page', timeout)[0]

    def click(self, css):
        """Clicks css; found again if the page re-rendered it in between (a view that
        redraws a part when a reply arrives replaces its buttons)."""
        from selenium.common.exceptions import StaleElementReferenceException
        for attempt in range(5):
            e = self.wait_el(css)
            try:
                self.d.execute_script('arguments[0].scrollIntoView({block: "center"})', e)
                e.click()
                return
            except StaleElementReferenceException:
                if attempt == 4:
                    raise
                time.sleep(0.1)

    def fill(self, css, text):
        e = self.wait_el(css)
        e.clear()
        e.send_keys(str(text))

    def select(self, css, value):
        from selenium.webdriver.support.ui import Select
        Select(self.wait_el(css)).select_by_value(str(value))

    def text(self, css):
        return self.wait_el(css).text

    def files(self, css, paths):
        self.wait_el(css).send_keys('\n'.join(paths))

    def hover(self, css, fx, fy):
        """Moves the mouse to (fx, fy) as fractions of the element's box."""
        from selenium.webdriver.common.action_chains import ActionChains
        e = self.wait_el(css)
        r = e.rect
        ActionChains(self.d).move_to_element_with_offset(
            e, int(r['width'] * (fx - 0.5)), int(r['height'] * (fy - 0.5))).perform()

    def keys(self, css, *keys):
        self.wait_el(css).send_keys(*keys)

    def shot(self, name, full=False):
        """A PNG of the viewport (or the whole page) in the artifacts directory."""
        opts = {'format': 'png'}
        if full:
            opts['captureBeyondViewport'] = True
        png = self.d.execute_cdp_cmd('Page.captureScreenshot', opts)['data']
        with open(os.path.join(self.art, f'{name}.png'), 'wb') as f:
            f.write(base64.b64decode(png))

    def on_new_document(self, script):
        """Runs script in every page before the page's own (CDP; not subject to its CSP)."""
        self.d.execute_cdp_cmd('Page.addScriptToEvaluateOnNewDocument', {'source': script})

    def module(self, name, body, *args):
        """Imports /static/NAME in the page and runs body (JS statements over the module
        `m` and `args`, ending in a return): the page's own functions, in its browser."""
        return self.d.execute_async_script(
            'const done = arguments[arguments.length - 1], args = [...arguments].slice(0, -1);'
            f'import("/static/{name}").then((m) => {{ {body} }})'
            '.then(done, (e) => done({error: String(e && e.stack || e)}));', *args)

    def errors(self):
        """Console errors (and uncaught exceptions) since the last call, accumulated."""
        for e in self.d.get_log('browser'):
            if e.get('level') == 'SEVERE':
                self.console.append(e.get('message', ''))
        return self.console
