-- Test-only Prosody plugin for Meerkat's interop tests: sends outgoing S2S for
-- the domains in `s2s_static_routes` to a fixed address and port instead of
-- looking them up in DNS (Prosody's equivalent of Meerkat's
-- s2s.outgoing.address), so that federation runs on loopback with ephemeral
-- ports. Loaded from the test's temporary config through plugin_paths.
local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";

local routes = module:get_option("s2s_static_routes", {});
local none = { next = function (_, cb) cb(nil); end };
local original_new = service.new;

service.new = function (hostname, srv, conn_type, extra)
	local route = routes[hostname];
	if not route then
		return original_new(hostname, srv, conn_type, extra);
	end
	if srv ~= "xmpp-server" then
		-- No direct TLS (xmpps-server) route: STARTTLS only.
		return setmetatable({}, { __index = none });
	end
	return basic.new(route[1], route[2], conn_type, extra);
end

function module.unload()
	service.new = original_new;
end
