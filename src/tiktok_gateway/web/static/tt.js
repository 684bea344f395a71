/*
 * tiktok-gateway browser snippet. Add next to the TikTok pixel:
 *
 *   <script src="https://GATEWAY/tt.js" data-key="BROWSER_KEY" async></script>
 *
 * Options (data- attributes on the script tag):
 *   data-key              a browser ingest key (public; only accepted from its allowed origins)
 *   data-endpoint         where to send events (default: the gateway that served this file)
 *   data-consent          "granted" (default) or "denied": until ttgw.consent(true), nothing is sent
 *   data-ttclid-days      how long to keep the ttclid cookie: the attribution window (default 7)
 *   data-purchase-event   TikTok name for "purchase": CompletePayment (default) or Purchase
 *   data-pixel-report     "on" (default) or "off": report what the page's TikTok pixel did
 *   data-pixel-wait       ms to wait for the pixel's script before calling it not loaded (5000)
 *   data-pixel-src        part of the pixel script's URL, when it is served from elsewhere
 *                         (default: analytics.tiktok.com/i18n/pixel)
 *
 * API:
 *   ttgw.track(name, properties, {event_id, user})  -> the event_id used
 *   ttgw.consent(true | false)
 *
 * With an order_id and no event_id, the id is "<order_id>_<TikTokEvent>", the id the
 * gateway's webhooks compute for the same order, so TikTok counts the order once.
 *
 * The pixel leg: every ttq.track call the page makes (its own or this snippet's) is reported
 * to the gateway's /v1/pixel with its event name, event_id and order_id, and whether the
 * pixel library had loaded, was blocked, never loaded, or was held back for consent. That is
 * evidence for the gateway's pairing view; it is never sent to TikTok, and holds nothing
 * personal (no user data, no URL).
 */
(function (window, document) {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-key][src*='tt.js']");
  var options = (script && script.dataset) || {};
  var endpoint = options.endpoint || (script ? new URL("/v1/events", script.src).href : "/v1/events");
  var granted = (options.consent || "granted") !== "denied";
  var purchaseEvent = options.purchaseEvent || "CompletePayment";
  var NAMES = {
    purchase: purchaseEvent, view_item: "ViewContent", add_to_cart: "AddToCart",
    add_to_wishlist: "AddToWishlist", begin_checkout: "InitiateCheckout",
    add_payment_info: "AddPaymentInfo", search: "Search", sign_up: "CompleteRegistration",
    generate_lead: "Lead", subscribe: "Subscribe", contact: "Contact"
  };

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : undefined;
  }

  function rememberTtclid() {
    var ttclid = new URLSearchParams(window.location.search).get("ttclid");
    if (!ttclid) return;
    var days = parseFloat(options.ttclidDays || "7");
    document.cookie = "ttgw_ttclid=" + encodeURIComponent(ttclid) + "; max-age=" +
      Math.round(days * 86400) + "; path=/; SameSite=Lax" +
      (window.location.protocol === "https:" ? "; Secure" : "");
  }

  // Emails and phone numbers in a URL (a sign-up form's GET, a "?email=" link) never leave the
  // page: the same rule the gateway applies (identity.scrub_url).
  var EMAIL = /[^\s@\/?&=:;,<>"']+@[^\s@\/?&=:;,<>"']+\.[A-Za-z]{2,}/;
  var PHONE = /^\s*\+\s*\d[\d\s().-]{6,20}\s*$/;
  var PERSONAL_KEY = /e-?mail|phone|mobile|\btel\b|^tel|msisdn/i;

  function cleanUrl(href) {
    if (!href) return undefined;
    try {
      var url = new URL(href);
      var keep = new URLSearchParams();
      url.searchParams.forEach(function (value, key) {
        if (!(value && (EMAIL.test(value) || PHONE.test(value) || PERSONAL_KEY.test(key)))) {
          keep.append(key, value);
        }
      });
      url.search = keep.toString();
      if (EMAIL.test(decodeURIComponent(url.hash))) url.hash = "";
      if (EMAIL.test(decodeURIComponent(url.pathname))) url.pathname = "/";
      return url.toString();
    } catch (e) {
      return undefined;
    }
  }

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now() + "_" + Math.random().toString(16).slice(2);
  }

  function tiktokName(name) {
    return NAMES[String(name).toLowerCase()] || name;
  }

  function send(body) {
    post(endpoint, body);
  }

  function post(target, body) {
    var url = target + (target.indexOf("?") < 0 ? "?" : "&") + "key=" + encodeURIComponent(options.key || "");
    var payload = JSON.stringify(body);
    // text/plain keeps the request "simple": no CORS preflight, and sendBeacon accepts it.
    if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([payload], {type: "text/plain"}))) return;
    if (window.fetch) {
      window.fetch(url, {method: "POST", body: payload, keepalive: true, mode: "cors",
                         headers: {"Content-Type": "text/plain"}}).catch(function () {});
    }
  }

  function track(name, properties, extra) {
    properties = properties || {};
    extra = extra || {};
    var event = tiktokName(name);
    var eventId = extra.event_id ||
      (properties.order_id ? properties.order_id + "_" + event : randomId());
    var user = Object.assign({}, extra.user || {});
    var ttclid = cookie("ttgw_ttclid"), ttp = cookie("_ttp");
    if (ttclid && !user.ttclid) user.ttclid = ttclid;
    if (ttp && !user.ttp) user.ttp = ttp;
    if (granted) {
      send({event: name, event_id: eventId, event_time: Date.now(), user: user,
            properties: properties, consent: {marketing: true},
            page: {url: cleanUrl(window.location.href), referrer: cleanUrl(document.referrer)}});
    }
    hook();
    if (window.ttq && typeof window.ttq.track === "function") {
      // The pixel leg, with the same event_id: TikTok deduplicates the two.
      window.ttq.track(event, properties, {event_id: eventId});
    }
    return eventId;
  }

  // --- The pixel leg ------------------------------------------------------------------
  var reportPixel = options.pixelReport !== "off";
  var pixelWait = parseFloat(options.pixelWait || "5000");
  var pixelSrc = options.pixelSrc || "analytics.tiktok.com/i18n/pixel";
  var pixelEndpoint = endpoint.replace(/\/v1\/events(?=\?|$)/, "/v1/pixel");
  var pixelScript = null;  // "loaded" or "blocked" once the pixel's script says so
  var consentHeld = false;
  var hooked = null;  // the ttq object whose methods are wrapped
  var waiting = [];  // legs whose pixel state is not known yet
  var ready = [];  // legs to report
  var flushTimer = null;
  var reported = 0;

  function isPixelScript(target) {
    return target && target.tagName === "SCRIPT" && String(target.src).indexOf(pixelSrc) >= 0;
  }

  function onScript(state) {
    return function (e) {
      if (!isPixelScript(e.target)) return;
      pixelScript = pixelScript || state;
      settle(false);
    };
  }

  function pageLoadMs() {
    var nav = window.performance && performance.getEntriesByType &&
      performance.getEntriesByType("navigation")[0];
    if (nav && nav.loadEventEnd > 0) return Math.round(nav.loadEventEnd);
    return window.performance ? Math.round(performance.now()) : undefined;
  }

  function pixelId(ttq) {
    var ids = ttq && ttq._i ? Object.keys(ttq._i) : [];
    return ids.length ? String(ids[0]) : "";
  }

  // One call the page made to the pixel. `queued`: the ttq stub only queued it, so the pixel
  // library had not loaded then (yet).
  function seen(call, queued) {
    var method = call[0];
    if (method === "holdConsent" || method === "revokeConsent") consentHeld = true;
    if (method === "grantConsent") consentHeld = false;
    if (method !== "track" || !reportPixel) return;
    var props = call[2] || {}, opts = call[3] || {};
    var leg = {event: String(call[1] || ""), event_id: String(opts.event_id || props.event_id || ""),
               order_id: props.order_id ? String(props.order_id) : "", at: Date.now(),
               queued: queued, consent: consentHeld || !granted};
    if (!leg.event || !(leg.event_id || leg.order_id)) return;
    waiting.push(leg);
    setTimeout(function () { settle(false); }, pixelWait + 50);
    settle(false);
  }

  function stateOf(leg, final) {
    if (leg.consent || consentHeld) return "consent";
    if (!leg.queued || pixelScript === "loaded") return "loaded";
    if (pixelScript === "blocked") return "blocked";
    return final || Date.now() - leg.at >= pixelWait ? "not_loaded" : null;
  }

  function settle(final) {
    var still = [];
    waiting.forEach(function (leg) {
      var state = stateOf(leg, final);
      if (state === null) { still.push(leg); return; }
      ready.push({event: leg.event, event_id: leg.event_id, order_id: leg.order_id,
                  pixel: state, load_ms: pageLoadMs(), pixel_id: pixelId(window.ttq)});
    });
    waiting = still;
    if (final) flushPixel();
    else if (ready.length && !flushTimer) flushTimer = setTimeout(flushPixel, 1000);
  }

  function flushPixel() {
    clearTimeout(flushTimer);
    flushTimer = null;
    while (ready.length) {
      var legs = ready.splice(0, 50);
      post(pixelEndpoint, {legs: legs});
      reported += legs.length;
    }
  }

  function wrap(ttq, method) {
    var current = ttq[method];
    function wrapped() {
      var before = ttq.length;
      var result = typeof current === "function" ? current.apply(this, arguments) : undefined;
      var queued = typeof ttq.length === "number" && ttq.length > before;
      seen([method].concat(Array.prototype.slice.call(arguments)), queued);
      return result;
    }
    try {
      Object.defineProperty(ttq, method, {
        configurable: true, enumerable: true,
        get: function () { return wrapped; },
        // The pixel library putting its own method in place of the stub's: it has loaded.
        set: function (fn) { current = fn; pixelScript = "loaded"; settle(false); }
      });
    } catch (e) {
      ttq[method] = wrapped;
    }
  }

  function hook() {
    var ttq = window.ttq;
    if (!ttq || ttq === hooked || !reportPixel) return;
    if (hooked) pixelScript = "loaded";  // the library replaced the stub object
    hooked = ttq;
    // Calls made before this script ran wait in the stub's queue as [method, args...].
    if (typeof ttq.length === "number") {
      for (var i = 0; i < ttq.length; i++) {
        if (ttq[i] && typeof ttq[i].length === "number") seen(Array.prototype.slice.call(ttq[i]), true);
      }
    }
    ["track", "holdConsent", "revokeConsent", "grantConsent"].forEach(function (m) { wrap(ttq, m); });
  }

  if (reportPixel) {
    // Capture: a script's load and error events do not bubble.
    window.addEventListener("load", onScript("loaded"), true);
    window.addEventListener("error", onScript("blocked"), true);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") settle(true);
    });
    window.addEventListener("pagehide", function () { settle(true); });
    if (window.ttq) {
      hook();
    } else {
      // The pixel's base code comes later: hook its ttq once the script that makes it has
      // run (a microtask later), so that calls it queues there are seen in the queue.
      try {
        var made;
        Object.defineProperty(window, "ttq", {
          configurable: true, enumerable: true,
          get: function () { return made; },
          set: function (value) {
            made = value;
            Object.defineProperty(window, "ttq", {configurable: true, enumerable: true,
                                                  writable: true, value: value});
            Promise.resolve().then(hook);
          }
        });
      } catch (e) { /* the poll below hooks it */ }
    }
    var polls = 0, poller = setInterval(function () {
      hook();
      if (++polls > 40) clearInterval(poller);
    }, 250);
  }

  rememberTtclid();
  var queued = (window.ttgw && window.ttgw.q) || [];
  window.ttgw = {
    track: track,
    consent: function (value) { granted = !!value; },
    flushPixel: function () { settle(true); },
    pixelStatus: function () {
      return {script: pixelScript, consent_held: consentHeld, waiting: waiting.length,
              reported: reported, pixel_id: pixelId(window.ttq)};
    },
    version: "1"
  };
  queued.forEach(function (args) { track.apply(null, args); });
})(window, document);
