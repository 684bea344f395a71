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
 *
 * API:
 *   ttgw.track(name, properties, {event_id, user})  -> the event_id used
 *   ttgw.consent(true | false)
 *
 * With an order_id and no event_id, the id is "<order_id>_<TikTokEvent>", the id the
 * gateway's webhooks compute for the same order, so TikTok counts the order once.
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
    var url = endpoint + (endpoint.indexOf("?") < 0 ? "?" : "&") + "key=" + encodeURIComponent(options.key || "");
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
    if (window.ttq && typeof window.ttq.track === "function") {
      // The pixel leg, with the same event_id: TikTok deduplicates the two.
      window.ttq.track(event, properties, {event_id: eventId});
    }
    return eventId;
  }

  rememberTtclid();
  var queued = (window.ttgw && window.ttgw.q) || [];
  window.ttgw = {
    track: track,
    consent: function (value) { granted = !!value; },
    version: "1"
  };
  queued.forEach(function (args) { track.apply(null, args); });
})(window, document);
