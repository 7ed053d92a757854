/*
 * The demo shop's catalogue and page code.  Everything the pages show
 * about visitors comes from nginx and the module:
 *
 *   the "Recently viewed" ids    SSI include of /_history, or
 *                                fetch('/history.json')
 *   "forget my history"          DELETE /history.json
 *   how many are online          /online.json
 *   how often a product is seen  /views.json?ids=...
 */

var shop = (function () {
    'use strict';

    /* the ids are those of the product locations in examples/nginx.conf */
    var products = {
        '1': { name: 'Sencha green tea, 100 g', price: 8.50,
               colour: '#6a994e', text: 'Steamed Japanese green tea, ' +
               'fresh and grassy.' },
        '2': { name: 'Earl Grey, 100 g', price: 6.90,
               colour: '#4f6d9a', text: 'Black tea with bergamot oil.' },
        '3': { name: 'Assam breakfast tea, 250 g', price: 5.40,
               colour: '#a0522d', text: 'Strong and malty, for milk.' },
        '4': { name: 'Jasmine pearls, 50 g', price: 12.00,
               colour: '#c9a227', text: 'Rolled green tea scented with ' +
               'jasmine flowers.' },
        '5': { name: 'Rooibos vanilla, 100 g', price: 7.20,
               colour: '#b23a48', text: 'Caffeine-free red bush tea.' },
        '6': { name: 'Ceramic teapot, 0.8 l', price: 34.00,
               colour: '#3d405b', text: 'With a steel infuser.' },
        '7': { name: 'Glass mug, 350 ml', price: 9.90,
               colour: '#2a9d8f', text: 'Double-walled, keeps tea hot.' },
        '8': { name: 'Bamboo tea scoop', price: 4.50,
               colour: '#8d6e3f', text: 'One scoop, one cup.' }
    };

    function $(id) {
        return document.getElementById(id);
    }

    function el(tag, cls, text) {
        var e = document.createElement(tag);
        if (cls) {
            e.className = cls;
        }
        if (text !== undefined) {
            e.textContent = text;
        }
        return e;
    }

    function price(p) {
        return '\u20ac' + p.toFixed(2);
    }

    /* the product's "picture": a tile in its colour with its initials */
    function tile(id, big) {
        var p = products[id], t = el('div', big ? 'tile big' : 'tile');
        t.style.background = p.colour;
        t.textContent = p.name.split(/[ ,]+/).slice(0, 2).map(function (w) {
            return w.charAt(0);
        }).join('');
        return t;
    }

    /* product links of the page: /product/N (SSI) or /fetch/product/N */
    var base = '/product/';

    function link(id) {
        return base + encodeURIComponent(id);
    }

    /* the "Recently viewed" strip, from the ids nginx gave */
    function strip(ids, source) {
        var ol = $('recent');

        ol.setAttribute('data-source', source);
        ol.textContent = '';

        ids.forEach(function (id) {
            if (!products.hasOwnProperty(id)) {
                return;
            }
            var li = el('li'), a = el('a');
            li.setAttribute('data-id', id);
            a.href = link(id);
            a.appendChild(tile(id));
            a.appendChild(el('span', 'name', products[id].name));
            a.appendChild(el('span', 'price', price(products[id].price)));
            li.appendChild(a);
            ol.appendChild(li);
        });

        $('recent-empty').hidden = ol.children.length > 0;
        ol.setAttribute('data-ready', '1');
    }

    function online() {
        fetch('/online.json', { credentials: 'same-origin' })
            .then(function (r) { return r.json(); })
            .then(function (o) {
                var box = $('online');
                if (typeof o.online === 'number') {
                    $('online-count').textContent = o.online;
                    box.hidden = false;
                } else {
                    box.hidden = true;
                }
            })
            .catch(function () { $('online').hidden = true; });
    }

    function plural(n, one, many) {
        return n + ' ' + (n === 1 ? one : many);
    }

    /* the counts of the given ids, each into the element made by "into" */
    function views(ids, into) {
        fetch('/views.json?ids=' + ids.join(','),
              { credentials: 'same-origin' })
            .then(function (r) { return r.json(); })
            .then(function (v) {
                ids.forEach(function (id) {
                    if (v[id]) {
                        into(id, v[id]);
                    }
                });
            })
            .catch(function () {});
    }

    function forget() {
        var msg = $('forget-done');

        fetch('/history.json', { method: 'DELETE',
                                 credentials: 'same-origin' })
            .then(function (r) {
                if (r.status === 204) {
                    msg.textContent = 'Your history is forgotten.';
                    if ($('recent')) {
                        strip([], $('recent').getAttribute('data-source'));
                    }
                } else {
                    msg.textContent = 'Please try again later.';
                }
            })
            .catch(function () { msg.textContent = 'Please try again later.'; });
    }

    function header() {
        $('forget').onclick = forget;
        online();
        setInterval(online, 10000);
    }

    /* the catalogue page */
    function catalogue() {
        var grid = $('catalogue'), ids = Object.keys(products);

        header();

        ids.forEach(function (id) {
            var li = el('li', 'card'), a = el('a'), p = products[id];
            li.setAttribute('data-id', id);
            a.href = link(id);
            a.appendChild(tile(id, true));
            a.appendChild(el('span', 'name', p.name));
            a.appendChild(el('span', 'price', price(p.price)));
            li.appendChild(a);
            li.appendChild(el('span', 'views', ''));
            grid.appendChild(li);
        });

        views(ids, function (id, c) {
            var s = grid.querySelector('li[data-id="' + id + '"] .views');
            s.textContent = plural(c.total, 'view', 'views');
            s.setAttribute('data-total', c.total);
        });
    }

    /* a product page; "fetched": its links are the fetch() pages */
    function product(fetched) {
        var id = document.body.getAttribute('data-product'),
            p = products[id];

        if (fetched) {
            base = '/fetch/product/';
        }

        header();

        document.title = p.name + ' \u2013 The Tea Shop';
        $('product').insertBefore(tile(id, true), $('product').firstChild);
        $('name').textContent = p.name;
        $('price').textContent = price(p.price);
        $('text').textContent = p.text;

        views([id], function (id, c) {
            var v = $('views');
            v.textContent = 'Seen ' + plural(c.total, 'time', 'times')
                            + ', ' + c.today + ' today, by '
                            + plural(c.unique, 'visitor', 'visitors') + '.';
            v.setAttribute('data-total', c.total);
        });
    }

    /* the strip of a fetch() page, read by the browser */
    function fetchStrip() {
        var id = document.body.getAttribute('data-product');

        fetch('/history.json?limit=4&exclude=' + encodeURIComponent(id),
              { credentials: 'same-origin' })
            .then(function (r) { return r.json(); })
            .then(function (ids) { strip(ids, 'fetch'); })
            .catch(function () { strip([], 'fetch'); });
    }

    return { catalogue: catalogue, product: product, strip: strip,
             fetchStrip: fetchStrip };
})();
