// Starts converse.js with the account and transport the test put in the query
// string, and exposes what the test watches (window.meerkat): whether the session
// is up, and the bodies of the messages converse received.
(function () {
  const q = new URLSearchParams(location.search);
  const state = { connected: false, received: [], errors: [], api: null };
  window.meerkat = state;

  converse.plugins.add("meerkat-test", {
    initialize() {
      const { api } = this._converse;
      state.api = api;
      api.listen.on("connected", () => {
        state.connected = true;
      });
      api.listen.on("message", (data) => {
        const body = data?.attrs?.body;
        if (body) state.received.push(body);
      });
    },
  });

  const transport = q.get("transport");
  const settings = {
    authentication: "login",
    auto_login: true,
    jid: q.get("jid"),
    password: q.get("password"),
    discover_connection_methods: false,
    allow_non_roster_messaging: true,
    view_mode: "fullscreen",
    i18n: "en",
    play_sounds: false,
    show_controlbox_by_default: true,
    whitelisted_plugins: ["meerkat-test"],
    loglevel: "info",
  };
  if (transport === "bosh") settings.bosh_service_url = q.get("service");
  else settings.websocket_url = q.get("service");
  converse.initialize(settings).catch((e) => state.errors.push(String(e)));
})();
