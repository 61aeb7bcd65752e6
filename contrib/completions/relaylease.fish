# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_relaylease_global_optspecs
    string join \n socket= db= v/verbose q/quiet h/help V/version
end

function __fish_relaylease_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_relaylease_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_relaylease_using_subcommand
    set -l cmd (__fish_relaylease_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c relaylease -n "__fish_relaylease_needs_command" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_needs_command" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_needs_command" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_needs_command" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_needs_command" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_needs_command" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "daemon" -d 'Run the daemon: follow logins, keep leases, answer the SMTP side'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "check" -d 'May ADDR relay now? Exit 0 yes, 1 no, 2 error'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "list" -d 'List the live leases, soonest expiry first'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "add" -d 'Grant ADDR a lease by hand'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "del" -d 'Delete the lease of ADDR'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "flush" -d 'Delete every lease'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "window" -d 'Show the expiry window, or change it for logins from now on (until the daemon restarts: put it in --expire to keep it)'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "stats" -d 'Show counters'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "hook" -d 'Report one successful login to the daemon, then exec PROGRAM (a login chain link)'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "smtp-wrap" -d 'Under tcpserver: set RELAYCLIENT when $TCPREMOTEIP may relay, then exec PROGRAM'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "usage" -d 'Who logged in and who relayed through a lease: the usage table, most recent relay first (counts are totals since each record began)'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "parse-log" -d 'Dry run: print the logins found in log files (or stdin), or in the journal, touching nothing'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "doctor" -d 'Check this host\'s setup for the daemon started with the same flags: Postfix (through postconf), Dovecot (through doveconf), qmail\'s cdb and the daemon. One line per check, ok, warn or FAIL with its fix. Exit 0 nothing failed, 1 something failed, 2 could not run'
complete -c relaylease -n "__fish_relaylease_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l expire -d 'How long a login lets its address relay (humantime: 30m, 1h 30m)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l ipv6-prefix -d 'IPv6 clients share one lease per prefix of this length (128: exact address)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l allow -d 'Always allowed to relay, never stored (like Postfix\'s mynetworks); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l deny -d 'Logins from here never create a lease (webmail, mailbox pollers); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l users -d 'Only logins by the users listed in FILE (one per line) create leases; re-read on SIGHUP' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l writer-group -d 'Members of GROUP may change leases through the control socket (login, add, del, flush)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l socket-mode -d 'Permissions of the control socket file, in octal' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l socket-group -d 'Group of the control socket file' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l watch -d 'Follow this log file for logins; repeatable' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l journal-unit -d 'With --journal: the mail servers\' systemd units; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l journal-identifier -d 'With --journal: also read entries with this SYSLOG_IDENTIFIER, for a server that is not a unit of its own; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l journal-trust-exe -d 'With --journal: also believe entries written by this program (Dovecot\'s, Courier\'s and Cyrus\' are believed already); a path ending in / stands for its directory; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l journal-trust-user -d 'With --journal: also believe entries written as this user (root, dovecot, courier and cyrus are believed already); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l format -d 'Parse the preceding --watch file as this format only (dovecot, courier, cyrus, uw-imap, qpopper, mailutils, popa3d, solid-pop3d, vchkpw)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l login-pattern -d 'A site\'s own login line format: a regex with named groups `ip` and optionally `user`; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l max-session-hold -d 'Keep a followed login\'s lease while its session is open (Dovecot, Courier, Cyrus log its end), for at most this long after the login; the window then runs from the end. 0 turns this off' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l policy -d 'Serve Postfix\'s policy delegation protocol at ADDR: unix:/path or inet:host:port; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l socketmap -d 'Serve the socketmap lookup protocol of Sendmail and Postfix at ADDR: unix:/path or inet:host:port; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l socketmap-name -d 'The map name socketmap lookups must ask for (Sendmail\'s K line, Postfix\'s socketmap:ADDR:NAME)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l socketmap-value -d 'What a socketmap lookup answers (after OK) for an address that may relay' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l dovecot-policy -d 'Take logins from Dovecot\'s auth-policy reports (auth_policy_server_url, auth_policy_report_after_auth = yes) over HTTP at ADDR: inet:127.0.0.1:PORT (loopback only)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l dovecot-policy-secret-file -d 'The auth_policy_server_api_header every Dovecot request must carry, `Name: value`, read from FILE (without it any local process could report a login)' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l policy-mode -d 'Permissions of the policy and socketmap unix sockets, in octal (Postfix\'s smtpd runs as user postfix)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l policy-group -d 'Group of the policy and socketmap unix sockets (e.g. postfix, with --policy-mode 0660)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l tcprules -d 'Keep a tcpserver rules cdb for qmail: each leased address gets ADDR:allow,RELAYCLIENT=""' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l tcprules-base -d 'The administrator\'s static tcprules rules (tcprules text syntax), merged in; a static rule wins over a lease for the same address. Re-read on SIGHUP' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l tcprules-env -d 'Variables a leased address gets in the cdb [default: RELAYCLIENT=""]; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l user -d 'After binding sockets and opening files as root, run as USER' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l group -d 'With --user: run with this group instead of the user\'s own (its other groups, such as adm for reading logs, are kept)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l store -d 'Keep leases in Redis, shared by every relaylease of a site: redis://[USER:PASSWORD@]HOST:PORT/DB, rediss:// for TLS, or redis+sentinel://[USER:PASSWORD@]HOST:PORT,.../MASTER/DB with ?sentinel_pass=P to find the primary through Sentinel (log positions and settings stay in --db)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l store-prefix -d 'Name prefix of relaylease\'s keys and channel in Redis, so several sites can share one' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l store-replicas -d 'A login (hook, Dovecot auth-policy, add) counts as stored in Redis only once this many replicas confirm it (Redis WAIT); until then it stays queued on this host, and the hook\'s reply says so. 0 trusts the primary alone' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l unleased-action -d 'What the policy service answers at RCPT a client without a lease: dunno, or defer (DEFER_IF_REJECT: Postfix answers 450 instead of 554 to a relay it refuses, and the client tries again after fetching its mail)' -r -f -a "dunno\t'No opinion: the rest of Postfix\'s list decides (relay refused with 554)'
defer\t'DEFER_IF_REJECT: a refusal later in the list becomes 450, so the client retries'"
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l mark-header -d 'Mark mail relayed through a lease with this header (Postfix: the policy service in smtpd_data_restrictions answers PREPEND at DATA; qmail: TCPREMOTEINFO). Off by default' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l mark-token-secret -d 'With --mark-header: name an opaque token instead of the user, keyed by the secret in FILE (at least 16 bytes); `relaylease usage --token` maps it back' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l usage-retention -d 'Drop usage records with no login or relay for this long' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l journal -d 'Read logins from the local systemd journal (through libsystemd, loaded then); only entries whose writer the kernel shows to be the mail server count'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l journal-any-origin -d 'With --journal: believe every selected entry whoever wrote it, as a log file\'s lines (servers whose lines reach the journal through a relay such as rsyslog)'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l watch-insecure -d 'Follow --watch files that ordinary users can write (the file or its directory writable by others, or owned by a uid of 1000 or above): any of them could then write a login line and open the relay. Without it such a file is refused'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l dovecot-policy-no-secret -d 'Take Dovecot\'s auth-policy reports without a secret: any local process can then report a login and open the relay for any address. Without it --dovecot-policy needs --dovecot-policy-secret-file'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -l store-no-password -d 'Use a --store URL without a password: whoever can reach that Redis can then write a lease and open the relay. Without it a URL must carry a password'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c relaylease -n "__fish_relaylease_using_subcommand daemon" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand check" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand check" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand check" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand check" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand check" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand check" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -l json -d 'One JSON object with every lease, for scripts'
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand list" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -l for -d 'How long [default: the daemon\'s --expire window]' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand add" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand del" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand del" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand del" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand del" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand del" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand del" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand flush" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand flush" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand flush" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand flush" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand flush" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand flush" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand window" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand window" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand window" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand window" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand window" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand window" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -l json -d 'JSON for scripts'
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -l prometheus -d 'Prometheus text format, for node_exporter\'s textfile collector'
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand stats" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -l ip -d 'Client address [default: $TCPREMOTEIP, else $IP]' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -l user -d 'User name [default: $USER]' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -l timeout -d 'How long to wait for the daemon before giving up (the login goes on regardless)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand hook" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -l env -d 'What to set for a client that may relay [default: RELAYCLIENT=]; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -l timeout -d 'How long to wait for the daemon; after that PROGRAM runs without RELAYCLIENT' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand smtp-wrap" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l since -d 'Only users with a login or a relay in this period (humantime: 180d); with --users-file, those who relayed in it' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l forget -d 'Remove USER\'s usage record (a privacy request); an address removes the record of logins without a user name from it' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l token -d 'Which user a --mark-header token stands for (asks the daemon, which holds --mark-token-secret)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l json -d 'One JSON object, for scripts'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l csv -d 'CSV with a header line, times in UTC'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -l users-file -d 'Print a --users file listing the users who relayed through a lease (the freeze: give it to the daemon\'s --users and reload)'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand usage" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l since -d 'With --journal: only entries since TIME, how long ago (90m, 2days) or a UTC time (2026-11-22 03:00:00) [default: all the journal holds]' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l journal-unit -d 'With --journal: the mail servers\' systemd units; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l journal-identifier -d 'With --journal: also read entries with this SYSLOG_IDENTIFIER, for a server that is not a unit of its own; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l journal-trust-exe -d 'With --journal: also believe entries written by this program (Dovecot\'s, Courier\'s and Cyrus\' are believed already); a path ending in / stands for its directory; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l journal-trust-user -d 'With --journal: also believe entries written as this user (root, dovecot, courier and cyrus are believed already); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l format -d 'Parse every line as this format instead of detecting it' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l login-pattern -d 'A site\'s own login format: a regex with named groups `ip` and optionally `user`' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l json -d 'One JSON object per login and one for the summary'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l journal -d 'Read logins from the local systemd journal (through libsystemd, loaded then); only entries whose writer the kernel shows to be the mail server count'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -l journal-any-origin -d 'With --journal: believe every selected entry whoever wrote it, as a log file\'s lines (servers whose lines reach the journal through a relay such as rsyslog)'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -s h -l help -d 'Print help'
complete -c relaylease -n "__fish_relaylease_using_subcommand parse-log" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l postfix-config -d 'Postfix\'s configuration directory, for another instance (postconf -c DIR) [default: Postfix\'s own, when --policy or --socketmap is given]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l dovecot-config -d 'Dovecot\'s configuration file (doveconf -c FILE) [default: Dovecot\'s own, when it is installed and logins come from logs or its auth-policy reports]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l tcprules-user -d 'The user tcpserver reads the --tcprules cdb as' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l expire -d 'How long a login lets its address relay (humantime: 30m, 1h 30m)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l ipv6-prefix -d 'IPv6 clients share one lease per prefix of this length (128: exact address)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l allow -d 'Always allowed to relay, never stored (like Postfix\'s mynetworks); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l deny -d 'Logins from here never create a lease (webmail, mailbox pollers); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l users -d 'Only logins by the users listed in FILE (one per line) create leases; re-read on SIGHUP' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l writer-group -d 'Members of GROUP may change leases through the control socket (login, add, del, flush)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l socket-mode -d 'Permissions of the control socket file, in octal' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l socket-group -d 'Group of the control socket file' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l watch -d 'Follow this log file for logins; repeatable' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l journal-unit -d 'With --journal: the mail servers\' systemd units; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l journal-identifier -d 'With --journal: also read entries with this SYSLOG_IDENTIFIER, for a server that is not a unit of its own; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l journal-trust-exe -d 'With --journal: also believe entries written by this program (Dovecot\'s, Courier\'s and Cyrus\' are believed already); a path ending in / stands for its directory; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l journal-trust-user -d 'With --journal: also believe entries written as this user (root, dovecot, courier and cyrus are believed already); repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l format -d 'Parse the preceding --watch file as this format only (dovecot, courier, cyrus, uw-imap, qpopper, mailutils, popa3d, solid-pop3d, vchkpw)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l login-pattern -d 'A site\'s own login line format: a regex with named groups `ip` and optionally `user`; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l max-session-hold -d 'Keep a followed login\'s lease while its session is open (Dovecot, Courier, Cyrus log its end), for at most this long after the login; the window then runs from the end. 0 turns this off' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l policy -d 'Serve Postfix\'s policy delegation protocol at ADDR: unix:/path or inet:host:port; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l socketmap -d 'Serve the socketmap lookup protocol of Sendmail and Postfix at ADDR: unix:/path or inet:host:port; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l socketmap-name -d 'The map name socketmap lookups must ask for (Sendmail\'s K line, Postfix\'s socketmap:ADDR:NAME)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l socketmap-value -d 'What a socketmap lookup answers (after OK) for an address that may relay' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l dovecot-policy -d 'Take logins from Dovecot\'s auth-policy reports (auth_policy_server_url, auth_policy_report_after_auth = yes) over HTTP at ADDR: inet:127.0.0.1:PORT (loopback only)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l dovecot-policy-secret-file -d 'The auth_policy_server_api_header every Dovecot request must carry, `Name: value`, read from FILE (without it any local process could report a login)' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l policy-mode -d 'Permissions of the policy and socketmap unix sockets, in octal (Postfix\'s smtpd runs as user postfix)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l policy-group -d 'Group of the policy and socketmap unix sockets (e.g. postfix, with --policy-mode 0660)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l tcprules -d 'Keep a tcpserver rules cdb for qmail: each leased address gets ADDR:allow,RELAYCLIENT=""' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l tcprules-base -d 'The administrator\'s static tcprules rules (tcprules text syntax), merged in; a static rule wins over a lease for the same address. Re-read on SIGHUP' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l tcprules-env -d 'Variables a leased address gets in the cdb [default: RELAYCLIENT=""]; repeatable' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l user -d 'After binding sockets and opening files as root, run as USER' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l group -d 'With --user: run with this group instead of the user\'s own (its other groups, such as adm for reading logs, are kept)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l store -d 'Keep leases in Redis, shared by every relaylease of a site: redis://[USER:PASSWORD@]HOST:PORT/DB, rediss:// for TLS, or redis+sentinel://[USER:PASSWORD@]HOST:PORT,.../MASTER/DB with ?sentinel_pass=P to find the primary through Sentinel (log positions and settings stay in --db)' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l store-prefix -d 'Name prefix of relaylease\'s keys and channel in Redis, so several sites can share one' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l store-replicas -d 'A login (hook, Dovecot auth-policy, add) counts as stored in Redis only once this many replicas confirm it (Redis WAIT); until then it stays queued on this host, and the hook\'s reply says so. 0 trusts the primary alone' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l log-format -d 'Log format on stderr' -r -f -a "text\t''
json\t''"
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l unleased-action -d 'What the policy service answers at RCPT a client without a lease: dunno, or defer (DEFER_IF_REJECT: Postfix answers 450 instead of 554 to a relay it refuses, and the client tries again after fetching its mail)' -r -f -a "dunno\t'No opinion: the rest of Postfix\'s list decides (relay refused with 554)'
defer\t'DEFER_IF_REJECT: a refusal later in the list becomes 450, so the client retries'"
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l mark-header -d 'Mark mail relayed through a lease with this header (Postfix: the policy service in smtpd_data_restrictions answers PREPEND at DATA; qmail: TCPREMOTEINFO). Off by default' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l mark-token-secret -d 'With --mark-header: name an opaque token instead of the user, keyed by the secret in FILE (at least 16 bytes); `relaylease usage --token` maps it back' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l usage-retention -d 'Drop usage records with no login or relay for this long' -r
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l socket -d 'Control socket of the daemon [default: /run/relaylease/relaylease.sock as root, else $XDG_RUNTIME_DIR/relaylease.sock]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l db -d 'Lease database directory [default: /var/lib/relaylease as root, else $XDG_STATE_HOME/relaylease]' -r -F
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l json -d 'The same checks as one JSON object, for scripts'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l journal -d 'Read logins from the local systemd journal (through libsystemd, loaded then); only entries whose writer the kernel shows to be the mail server count'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l journal-any-origin -d 'With --journal: believe every selected entry whoever wrote it, as a log file\'s lines (servers whose lines reach the journal through a relay such as rsyslog)'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l watch-insecure -d 'Follow --watch files that ordinary users can write (the file or its directory writable by others, or owned by a uid of 1000 or above): any of them could then write a login line and open the relay. Without it such a file is refused'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l dovecot-policy-no-secret -d 'Take Dovecot\'s auth-policy reports without a secret: any local process can then report a login and open the relay for any address. Without it --dovecot-policy needs --dovecot-policy-secret-file'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -l store-no-password -d 'Use a --store URL without a password: whoever can reach that Redis can then write a lease and open the relay. Without it a URL must carry a password'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -s v -l verbose -d 'More log output (repeat for more)'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -s q -l quiet -d 'Less log output: warnings and errors only (twice: errors only)'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c relaylease -n "__fish_relaylease_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "daemon" -d 'Run the daemon: follow logins, keep leases, answer the SMTP side'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "check" -d 'May ADDR relay now? Exit 0 yes, 1 no, 2 error'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "list" -d 'List the live leases, soonest expiry first'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "add" -d 'Grant ADDR a lease by hand'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "del" -d 'Delete the lease of ADDR'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "flush" -d 'Delete every lease'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "window" -d 'Show the expiry window, or change it for logins from now on (until the daemon restarts: put it in --expire to keep it)'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "stats" -d 'Show counters'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "hook" -d 'Report one successful login to the daemon, then exec PROGRAM (a login chain link)'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "smtp-wrap" -d 'Under tcpserver: set RELAYCLIENT when $TCPREMOTEIP may relay, then exec PROGRAM'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "usage" -d 'Who logged in and who relayed through a lease: the usage table, most recent relay first (counts are totals since each record began)'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "parse-log" -d 'Dry run: print the logins found in log files (or stdin), or in the journal, touching nothing'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "doctor" -d 'Check this host\'s setup for the daemon started with the same flags: Postfix (through postconf), Dovecot (through doveconf), qmail\'s cdb and the daemon. One line per check, ok, warn or FAIL with its fix. Exit 0 nothing failed, 1 something failed, 2 could not run'
complete -c relaylease -n "__fish_relaylease_using_subcommand help; and not __fish_seen_subcommand_from daemon check list add del flush window stats hook smtp-wrap usage parse-log doctor help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
