# Shared by scripts/compare-servers.sh and scripts/soak.sh (sourced, not run).

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { # PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Writes Meerkat's benchmark config to FILE: the embedded default's modules plus in-band
# registration, one STARTTLS listener on 127.0.0.1:PORT, SQLite at DATABASE, and the given
# certificate (or Meerkat's own self-signed one when none is given).
meerkat_bench_config() { # FILE PORT DATABASE [CERTFILE KEYFILE]
    local tls=""
    if [ $# -ge 5 ]; then
        tls=$(printf '  tls.certfile = "%s"\n  tls.keyfile = "%s"' "$4" "$5")
    fi
    cat > "$1" <<TOML
[general]
  hosts = ["localhost"]
  loglevel = "warning"

[[listen.c2s]]
  port = $2
  ip_address = "127.0.0.1"
  tls.mode = "starttls"
$tls

[outgoing_pools.rdbms.default.connection]
  driver = "sqlite"
  database = "$3"

[modules.mod_offline]
[modules.mod_register]
[modules.mod_roster]
[modules.mod_disco]
[modules.mod_ping]
[modules.mod_version]
TOML
}
