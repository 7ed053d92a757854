#!/usr/bin/env python3
#
# The demo shop (examples/) in a real browser: Debian's chromium, headless,
# driven by chromedriver through python3-selenium.  One profile views
# products in an order and checks the "Recently viewed" strip, newest
# first and without the product on screen, on the SSI pages and on the
# fetch() pages, the view counts, and "forget my history"; a second
# profile makes the online count go up.  Screenshots go to the directory
# given.
#
# usage: t/browser/shop.py URL SCREENSHOT_DIR
#
# Run by "make test-browser" (scripts/test-browser.sh), against a demo
# started for it with an empty Redis.  Prints TAP; exits non-zero on any
# failure.
#
# environment:
#   CHROMIUM            the browser (/usr/bin/chromium)
#   CHROMEDRIVER        the driver (/usr/bin/chromedriver)
#   BROWSER_DRIVER_PORT first of the two ports the drivers listen on (9515)

import os
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('CHROMEDRIVER', '/usr/bin/chromedriver')
DRIVER_PORT = int(os.environ.get('BROWSER_DRIVER_PORT', '9515'))

FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         '--window-size=1200,800', '--hide-scrollbars']

# examples/html/shop.js
NAMES = {
    '1': 'Sencha green tea, 100 g', '2': 'Earl Grey, 100 g',
    '3': 'Assam breakfast tea, 250 g', '4': 'Jasmine pearls, 50 g',
    '5': 'Rooibos vanilla, 100 g', '6': 'Ceramic teapot, 0.8 l',
    '7': 'Glass mug, 350 ml', '8': 'Bamboo tea scoop',
}
PRICES = {'2': '\u20ac6.90', '3': '\u20ac5.40', '5': '\u20ac7.20',
          '7': '\u20ac9.90', '4': '\u20ac12.00', '6': '\u20ac34.00'}

url = sys.argv[1].rstrip('/')
shots = sys.argv[2]
os.makedirs(shots, exist_ok=True)

tests = 0
failed = 0


def check(ok, name, got=None, expected=None):
    global tests, failed
    tests += 1
    print('%s %d - %s' % ('ok' if ok else 'not ok', tests, name))
    if not ok:
        failed += 1
        print('#   got:      %r' % (got,))
        print('#   expected: %r' % (expected,))
    sys.stdout.flush()


def is_(got, expected, name):
    check(got == expected, name, got, expected)


class Profile:
    """A browser with a profile of its own: a visitor."""

    def __init__(self, name, port):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix='history-browser-')
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for f in FLAGS:
            opts.add_argument(f)
        opts.add_argument('--user-data-dir=' + self.dir)
        log = os.path.join(shots, 'chromedriver-%s.log' % name)
        service = Service(executable_path=CHROMEDRIVER, port=port,
                          log_path=log)
        self.d = webdriver.Chrome(service=service, options=opts)
        self.d.set_page_load_timeout(20)

    def quit(self):
        try:
            self.d.quit()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def open(self, path):
        self.d.get(url + path)
        self.wait('#recent[data-ready="1"]')

    def wait(self, css, timeout=10):
        try:
            WebDriverWait(self.d, timeout).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, css))
            return True
        except TimeoutException:
            return False

    def text(self, css):
        e = self.d.find_elements(By.CSS_SELECTOR, css)
        return e[0].text if e else None

    def strip(self):
        """(source, ids) of the "Recently viewed" strip as shown"""
        ol = self.d.find_element(By.ID, 'recent')
        ids = [li.get_attribute('data-id')
               for li in ol.find_elements(By.CSS_SELECTOR, 'li')]
        return ol.get_attribute('data-source'), ids

    def empty_shown(self):
        return self.d.find_element(By.ID, 'recent-empty').is_displayed()

    def online(self):
        if not self.wait('#online:not([hidden])'):
            return None
        return int(self.text('#online-count'))

    def total(self, css):
        """the view count a page shows, once it has come"""
        if not self.wait(css + '[data-total]'):
            return None
        e = self.d.find_element(By.CSS_SELECTOR, css)
        return int(e.get_attribute('data-total'))

    def shot(self, name):
        path = os.path.join(shots, name)
        self.d.save_screenshot(path)
        print('# screenshot: %s' % path)


def product(p, id, expected, source='ssi', fetched=False):
    """open a product page; check its name, price and strip"""
    path = ('/fetch/product/' if fetched else '/product/') + id
    p.open(path)
    is_(p.text('#name'), NAMES[id], '%s: the name' % path)
    if id in PRICES:
        is_(p.text('#price'), PRICES[id], '%s: the price' % path)
    is_(p.strip(), (source, expected),
        '%s: the strip by %s, newest first, without %s'
        % (path, source, id))
    for li in p.d.find_elements(By.CSS_SELECTOR, '#recent li'):
        href = li.find_element(By.TAG_NAME, 'a').get_attribute('href')
        want = url + path.rsplit('/', 1)[0] + '/' + li.get_attribute('data-id')
        if href != want:
            check(False, '%s: the strip links to the same kind of page'
                  % path, href, want)
            break


a = b = None

try:
    a = Profile('a', DRIVER_PORT)

    # a new visitor: the catalogue, nothing viewed yet
    a.open('/')
    is_(len(a.d.find_elements(By.CSS_SELECTOR, '#catalogue li')), 8,
        'the catalogue shows 8 products')
    is_(a.strip(), ('ssi', []), 'a new visitor has an empty strip')
    check(a.empty_shown(), 'and is told so')
    check(a.d.get_cookie('vid') is not None,
          'nginx gave the visitor a cookie (history_cookie)')

    # the SSI pages, in an order: 2, 5, 3, 7, then 5 again
    product(a, '2', [])
    product(a, '5', ['2'])
    a.shot('product-ssi-2.png')
    product(a, '3', ['5', '2'])
    product(a, '7', ['3', '5', '2'])
    product(a, '5', ['7', '3', '2'])

    # the fetch() pages, the same history
    product(a, '2', ['5', '7', '3'], 'fetch', True)
    product(a, '6', ['2', '5', '7', '3'], 'fetch', True)
    a.shot('product-fetch.png')

    # an SSI page with a full strip: the README's screenshot
    product(a, '4', ['6', '2', '5', '7'])
    a.shot('product-ssi.png')

    # views so far: 2 twice, 5 twice, 3, 7, 6 and 4 once
    counts = {'2': 2, '5': 2, '3': 1, '7': 1, '6': 1, '4': 1, '1': 0,
              '8': 0}
    a.open('/product/5')
    is_(a.total('#views'), 3, '/product/5 shows its views, this one too')
    counts['5'] = 3
    a.open('/')
    got = {}
    for id in counts:
        got[id] = a.total('#catalogue li[data-id="%s"] .views' % id)
    is_(got, counts, 'the catalogue shows each product\'s views')
    is_(a.strip(), ('ssi', ['5', '4', '6', '2']),
        'the catalogue\'s strip: the last four, newest first')
    a.shot('catalogue.png')

    # one visitor online: this one
    n1 = a.online()
    is_(n1, 1, 'the green dot: one visitor online')

    # forget my history
    a.open('/product/3')
    is_(a.strip()[1], ['5', '4', '6', '2'], 'before forgetting')
    a.d.find_element(By.ID, 'forget').click()
    WebDriverWait(a.d, 10).until(lambda d: d.find_element(
        By.ID, 'forget-done').text != '')
    is_(a.text('#forget-done'), 'Your history is forgotten.',
        'forget: nginx answered 204')
    is_(a.strip(), ('ssi', []), 'forget: the strip is empty at once')
    check(a.empty_shown(), 'forget: and says so')
    a.shot('forgotten.png')
    a.d.refresh()
    a.wait('#recent[data-ready="1"]')
    is_(a.strip(), ('ssi', []),
        'forget: reloaded, the SSI strip is still empty')
    # the reload was a view of 3: the history starts again from it
    product(a, '1', ['3'], 'fetch', True)
    product(a, '8', ['1', '3'], 'fetch', True)

    # a second visitor: the online count goes up, on both screens
    b = Profile('b', DRIVER_PORT + 1)
    b.open('/')
    is_(b.online(), n1 + 1, 'a second profile: the online count goes up')
    is_(b.strip(), ('ssi', []), 'the second visitor has a strip of their own')
    b.shot('second-visitor.png')
    a.open('/')
    is_(a.online(), n1 + 1, 'the first visitor sees the same count')
    is_(a.strip(), ('ssi', ['8', '1', '3']),
        'and still has their own history')
    check(a.d.get_cookie('vid')['value'] != b.d.get_cookie('vid')['value'],
          'the two visitors have different ids')

except Exception as e:
    check(False, 'the browser test ran to its end', repr(e), 'no exception')
    for p in (a, b):
        if p:
            try:
                p.shot('failure-%s.png' % p.name)
            except Exception:
                pass
finally:
    for p in (a, b):
        if p:
            p.quit()

print('1..%d' % tests)
if failed:
    print('# failed %d of %d' % (failed, tests))
    sys.exit(1)
