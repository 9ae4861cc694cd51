/* A WebSocket that stays subscribed to one flow's events: exponential back-off with jitter
 * on failures, "offline" while the browser is, a ping when quiet, and on every (re)connect
 * {"action": "replay", "since": <last applied event id>} so nothing is lost in between.
 * Shows its state as text in an indicator element. Plain JavaScript, no build step. */
(() => {
  "use strict";

  const INITIAL_RETRY_MS = 500;
  const MAX_RETRY_MS = 15000;
  const PING_EVERY_MS = 20000;
  const SILENCE_LIMIT_MS = 50000;

  class LiveConnection {
    /**
     * path: the WebSocket path; since(): the id of the last event applied;
     * onEvent(event): apply one event; indicator: the element showing the connection state.
     */
    constructor({ path, since, onEvent, indicator }) {
      this.path = path;
      this.since = since;
      this.onEvent = onEvent;
      this.indicator = indicator;
      this.socket = null;
      this.failures = 0;
      this.retryTimer = null;
      this.retryAt = 0;
      this.lastMessageAt = 0;
      this.finalReason = null;
      this.connects = 0;
      setInterval(() => this.keepAlive(), 5000);
      window.addEventListener("offline", () => this.wentOffline());
      window.addEventListener("online", () => this.cameOnline());
      window.addEventListener("pagehide", () => this.stop());
    }

    url() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}${this.path}`;
    }

    setState(name, text) {
      this.indicator.dataset.state = name;
      this.indicator.querySelector(".conn-text").textContent = text;
    }

    connect() {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      if (this.finalReason) return;
      if (!navigator.onLine) return this.wentOffline();
      this.setState(this.failures ? "reconnecting" : "connecting",
        this.failures ? "reconnecting…" : "connecting…");
      let socket;
      try {
        socket = new WebSocket(this.url());
      } catch (error) {
        return this.scheduleRetry();
      }
      this.socket = socket;
      socket.onmessage = (message) => this.received(socket, message);
      socket.onclose = (event) => this.closed(socket, event);
    }

    received(socket, message) {
      if (socket !== this.socket) return;
      this.lastMessageAt = Date.now();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (data.type === "subscribed") {
        this.failures = 0;
        this.connects += 1;
        this.setState("connected", "connected");
        // Everything after the last event this page applied, in order, before live ones.
        socket.send(JSON.stringify({ action: "replay", since: this.since() }));
      } else if (data.type === "event") {
        this.onEvent(data);
      }
    }

    closed(socket, event) {
      if (socket !== this.socket) return;
      this.socket = null;
      if (event.code === 4401 || event.code === 4403) {
        this.finalReason = "offline — your session ended; reload the page after logging in";
      } else if (event.code === 4404) {
        this.finalReason = "offline — this flow is no longer available";
      }
      if (this.finalReason) return this.setState("offline", this.finalReason);
      this.scheduleRetry();
    }

    scheduleRetry() {
      if (this.finalReason || this.retryTimer) return;
      if (!navigator.onLine) return this.wentOffline();
      const base = Math.min(MAX_RETRY_MS, INITIAL_RETRY_MS * 2 ** this.failures);
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      this.failures += 1;
      this.retryAt = Date.now() + delay;
      this.retryTimer = setTimeout(() => this.connect(), delay);
      this.showCountdown();
    }

    showCountdown() {
      const seconds = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
      this.setState("reconnecting", `reconnecting in ${seconds} s (attempt ${this.failures})`);
    }

    keepAlive() {
      if (this.retryTimer) return this.showCountdown();
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) return this.drop();
      if (Date.now() - this.lastMessageAt > PING_EVERY_MS) {
        socket.send(JSON.stringify({ action: "ping" }));
      }
    }

    /** Abandon the current socket as if the network dropped it, then reconnect. */
    drop() {
      const socket = this.socket;
      this.socket = null;
      if (socket) socket.close();
      this.scheduleRetry();
    }

    wentOffline() {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      const socket = this.socket;
      this.socket = null;
      if (socket) socket.close();
      if (!this.finalReason) {
        this.setState("offline", "offline — will reconnect when the network is back");
      }
    }

    cameOnline() {
      if (this.finalReason || this.socket) return;
      this.failures = Math.max(this.failures, 1);
      this.connect();
    }

    stop() {
      this.finalReason = "closed";
      clearTimeout(this.retryTimer);
      if (this.socket) this.socket.close();
    }
  }

  window.FlowplatformLiveConnection = LiveConnection;
})();
