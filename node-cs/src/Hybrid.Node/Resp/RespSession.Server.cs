using System.Text;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>Server and introspection commands (INFO, COMMAND, CLIENT, CONFIG, CLUSTER): rare, so they may allocate.</summary>
public sealed partial class RespSession
{
    /// <summary>The Redis version this node reports, so clients enable the features it answers (RESP3, COMMAND DOCS).</summary>
    public static ReadOnlySpan<byte> RedisVersion => "7.2.0"u8;

    private void Info(RespArgs args)
    {
        var sections = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 1; i < args.Count; i++)
        {
            sections.Add(Encoding.UTF8.GetString(args[i]));
        }
        var all = sections.Count == 0 || sections.Contains("all") || sections.Contains("everything") || sections.Contains("default");
        // A tenant sees its own figures; the node's (every tenant's traffic, the process's memory) only the default
        // tenant, which exists on a loopback-only node (its operator), and the metrics port.
        bool nodeWide = _counts is null || _tenant!.Name == DefaultTenantName;
        var sb = new StringBuilder();
        if (all || sections.Contains("server"))
        {
            var uptime = (long)(DateTime.UtcNow - _context.StartedUtc).TotalSeconds;
            sb.Append("# Server\r\n")
              .Append("redis_version:").Append(Encoding.ASCII.GetString(RedisVersion)).Append("\r\n")
              .Append("hybridkv_version:0.1.0\r\n")
              .Append("hybridkv_info_scope:").Append(nodeWide ? "node" : "tenant").Append("\r\n")
              .Append("redis_mode:").Append(_context.ClusterEnabled ? "cluster" : "standalone").Append("\r\n");
            if (nodeWide)
            {
                sb.Append("os:").Append(Environment.OSVersion.VersionString).Append("\r\n")
                  .Append("arch_bits:64\r\n")
                  .Append("runtime:.NET ").Append(Environment.Version).Append("\r\n")
                  .Append("process_id:").Append(Environment.ProcessId).Append("\r\n");
            }
            sb.Append("tcp_port:").Append(_context.Endpoint.Port).Append("\r\n")
              .Append("uptime_in_seconds:").Append(uptime).Append("\r\n")
              .Append("uptime_in_days:").Append(uptime / 86400).Append("\r\n")
              .Append("\r\n");
        }
        if (all || sections.Contains("clients"))
        {
            long connected = nodeWide ? _context.ConnectedClients : Interlocked.Read(ref _counts!.Connected);
            // blocked_clients: no command here blocks (redis-cli --stat reads the field).
            sb.Append("# Clients\r\nconnected_clients:").Append(connected).Append("\r\nblocked_clients:0\r\n\r\n");
        }
        if (all || sections.Contains("memory"))
        {
            sb.Append("# Memory\r\n");
            if (nodeWide)
            {
                var metrics = _context.Store?.GetMetrics();
                sb.Append("used_memory:").Append(GC.GetTotalMemory(false) + (metrics?.MemoryBytes ?? 0)).Append("\r\n")
                  .Append("used_memory_rss:").Append(Environment.WorkingSet).Append("\r\n")
                  .Append("used_memory_managed_heap:").Append(GC.GetTotalMemory(false)).Append("\r\n")
                  .Append("store_memory_bytes:").Append(metrics?.MemoryBytes ?? 0).Append("\r\n")
                  .Append("store_log_bytes:").Append(metrics?.LogBytes ?? 0).Append("\r\n");
            }
            else
            {
                // What the tenant's live records take (its memory quota counts the same bytes).
                sb.Append("used_memory:").Append(_context.Store?.TenantBytes(_tenant!.Id) ?? 0).Append("\r\n");
            }
            sb.Append("\r\n");
        }
        if (all || sections.Contains("stats"))
        {
            long commands = (nodeWide ? _context.CommandsProcessed : Interlocked.Read(ref _counts!.Commands)) + _commands;
            long received = nodeWide ? _context.ConnectionsReceived : Interlocked.Read(ref _counts!.Received);
            sb.Append("# Stats\r\ntotal_connections_received:").Append(received).Append("\r\n")
              .Append("total_commands_processed:").Append(commands).Append("\r\n");
            if (nodeWide)
                sb.Append("parked_operations:").Append(_context.ParkedOperations).Append("\r\n");
            sb.Append("\r\n");
        }
        if (all || sections.Contains("keyspace"))
        {
            // The connection's tenant: its live records on this node as Redis's db0 (what redis-cli --stat reads; keys
            // never expire), and the bytes they use.
            sb.Append("# Keyspace\r\n");
            if (_tenant is not null && _context.Store is not null)
            {
                sb.Append("db0:keys=").Append(_context.Store.TenantRecords(_tenant.Id)).Append(",expires=0,avg_ttl=0\r\n")
                  .Append("tenant_").Append(_tenant.Name).Append(":bytes=").Append(_context.Store.TenantBytes(_tenant.Id)).Append("\r\n");
            }
            sb.Append("\r\n");
        }
        Output.WriteVerbatim(sb.ToString());
    }

    private void Command(RespArgs args)
    {
        var infos = RespCommandTable.Infos;
        if (args.Count == 1)
        {
            Output.WriteArrayHeader(infos.Count - 1);
            for (var i = 1; i < infos.Count; i++)
            {
                WriteCommandInfo(infos[i]);
            }
            return;
        }
        var sub = args[1];
        if (RespCommandTable.EqualsUpper(sub, "COUNT"u8))
        {
            Output.WriteInteger(infos.Count - 1);
        }
        else if (RespCommandTable.EqualsUpper(sub, "DOCS"u8))
        {
            var selected = SelectCommands(args);
            Output.WriteMapHeader(selected.Count);
            foreach (var info in selected)
            {
                Output.WriteBulk(info.Name);
                Output.WriteMapHeader(4);
                Output.WriteBulk("summary"u8);
                Output.WriteBulk(info.Summary);
                Output.WriteBulk("since"u8);
                Output.WriteBulk("1.0.0"u8);
                Output.WriteBulk("group"u8);
                Output.WriteBulk(info.Group);
                Output.WriteBulk("arguments"u8);
                Output.WriteArrayHeader(0);
            }
        }
        else if (RespCommandTable.EqualsUpper(sub, "INFO"u8))
        {
            Output.WriteArrayHeader(args.Count - 2);
            for (var i = 2; i < args.Count; i++)
            {
                var command = RespCommandTable.Lookup(args[i]);
                if (command == RespCommand.Unknown)
                {
                    Output.WriteNullArray();
                }
                else
                {
                    WriteCommandInfo(RespCommandTable.Info(command));
                }
            }
        }
        else
        {
            WriteUnknownSubcommand(sub, "COMMAND");
        }
    }

    /// <summary>COMMAND DOCS [name...]: the named known commands, or all of them.</summary>
    private static List<RespCommandInfo> SelectCommands(RespArgs args)
    {
        var selected = new List<RespCommandInfo>();
        if (args.Count == 2)
        {
            selected.AddRange(RespCommandTable.Infos.Skip(1));
        }
        for (var i = 2; i < args.Count; i++)
        {
            var command = RespCommandTable.Lookup(args[i]);
            if (command != RespCommand.Unknown)
            {
                selected.Add(RespCommandTable.Info(command));
            }
        }
        return selected;
    }

    /// <summary>One entry of the Redis 7 COMMAND reply: name, arity, flags, first, last, step, ACL categories, tips, key specs, subcommands.</summary>
    private void WriteCommandInfo(RespCommandInfo info)
    {
        Output.WriteArrayHeader(10);
        Output.WriteBulk(info.Name);
        Output.WriteInteger(info.Arity);
        Output.WriteSetHeader(info.Flags.Length);
        foreach (var flag in info.Flags)
        {
            Output.WriteSimpleString(Encoding.ASCII.GetBytes(flag));
        }
        Output.WriteInteger(info.FirstKey);
        Output.WriteInteger(info.LastKey);
        Output.WriteInteger(info.KeyStep);
        Output.WriteSetHeader(1);
        Output.WriteSimpleString(Encoding.ASCII.GetBytes("@" + info.Group));
        Output.WriteArrayHeader(0);
        Output.WriteArrayHeader(0);
        Output.WriteArrayHeader(0);
    }

    private void Client(RespArgs args)
    {
        var sub = args[1];
        if (RespCommandTable.EqualsUpper(sub, "SETNAME"u8) && args.Count == 3)
        {
            if (!PlainWord(args[2]))
            {
                Output.WriteError(NameRefusal);
                return;
            }
            _clientName = args[2].Length == 0 ? null : Encoding.UTF8.GetString(args[2]);
            Output.WriteOk();
        }
        else if (RespCommandTable.EqualsUpper(sub, "GETNAME"u8) && args.Count == 2)
        {
            if (_clientName is null)
            {
                Output.WriteNull();
            }
            else
            {
                Output.WriteBulk(_clientName);
            }
        }
        else if (RespCommandTable.EqualsUpper(sub, "SETINFO"u8) && args.Count == 4)
        {
            if (!PlainWord(args[3]))
            {
                Output.WriteError("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters."u8);
                return;
            }
            if (RespCommandTable.EqualsUpper(args[2], "LIB-NAME"u8))
                _libName = Encoding.UTF8.GetString(args[3]);
            else if (RespCommandTable.EqualsUpper(args[2], "LIB-VER"u8))
                _libVersion = Encoding.UTF8.GetString(args[3]);
            Output.WriteOk();
        }
        else if (RespCommandTable.EqualsUpper(sub, "INFO"u8) && args.Count == 2)
        {
            Output.WriteBulk(ClientLine());
        }
        else if (RespCommandTable.EqualsUpper(sub, "LIST"u8))
        {
            ClientList(args);
        }
        else if (RespCommandTable.EqualsUpper(sub, "ID"u8) && args.Count == 2)
        {
            Output.WriteInteger(ClientId);
        }
        else
        {
            WriteUnknownSubcommand(sub, "CLIENT");
        }
    }

    private static ReadOnlySpan<byte> NameRefusal => "ERR Client names cannot contain spaces, newlines or special characters."u8;

    /// <summary>
    /// True when <paramref name="value"/> is printable ASCII without spaces (Redis's rule for client names and library
    /// info): CLIENT LIST writes them into <c>key=value</c> lines, where a space or newline would forge fields or lines.
    /// </summary>
    private static bool PlainWord(ReadOnlySpan<byte> value)
    {
        foreach (byte b in value)
        {
            if (b is < (byte)'!' or > (byte)'~')
                return false;
        }
        return true;
    }

    /// <summary>
    /// CLIENT LIST [TYPE normal] [ID id ...]: the connections of this listener authenticated as this connection's
    /// tenant, one line each (another tenant's connections are not shown: their addresses and names are theirs).
    /// </summary>
    private void ClientList(RespArgs args)
    {
        HashSet<long>? ids = null;
        for (int i = 2; i < args.Count; i++)
        {
            if (RespCommandTable.EqualsUpper(args[i], "TYPE"u8) && i + 1 < args.Count)
            {
                if (!RespCommandTable.EqualsUpper(args[++i], "NORMAL"u8))
                {
                    Output.WriteBulk(""); // no replica, pubsub or primary connections here
                    return;
                }
            }
            else if (RespCommandTable.EqualsUpper(args[i], "ID"u8) && i + 1 < args.Count)
            {
                ids ??= [];
                while (++i < args.Count)
                {
                    if (!long.TryParse(args[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long id) || id <= 0)
                    {
                        Output.WriteError("ERR Invalid client ID"u8);
                        return;
                    }
                    ids.Add(id);
                }
            }
            else
            {
                Output.WriteError("ERR syntax error"u8);
                return;
            }
        }
        var lines = new StringBuilder();
        foreach (RespSession session in _context.Sessions.Where(s => s.Tenant?.Id == _tenant!.Id && (ids is null || ids.Contains(s.ClientId))).OrderBy(s => s.ClientId))
            lines.Append(session.ClientLine());
        Output.WriteBulk(lines.ToString());
    }

    /// <summary>This connection as CLIENT INFO and CLIENT LIST show it (Redis's fields that mean something here).</summary>
    private string ClientLine()
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        long age = (now - _openedTicks) / System.Diagnostics.Stopwatch.Frequency;
        long idle = Math.Max(0, now - LastActive) / System.Diagnostics.Stopwatch.Frequency;
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"id={ClientId} addr={RemoteAddress ?? ""} laddr={_context.Endpoint} name={_clientName} age={age} idle={idle} flags=N db=0 "
            + $"user={_tenant?.Name} resp={(Output.Protocol == 3 ? 3 : 2)} lib-name={_libName} lib-ver={_libVersion}\n");
    }

    private void Config(RespArgs args)
    {
        if (!RespCommandTable.EqualsUpper(args[1], "GET"u8))
        {
            WriteUnknownSubcommand(args[1], "CONFIG");
            return;
        }
        if (args.Count < 3)
        {
            Output.WriteError("ERR wrong number of arguments for 'config|get' command"u8);
            return;
        }
        // The parameters load generators ask about: no RDB snapshots, no AOF (persistence is the store's own).
        (string Name, string Value)[] known = [("save", ""), ("appendonly", "no"), ("databases", "1")];
        var matches = new List<(string Name, string Value)>();
        for (var i = 2; i < args.Count; i++)
        {
            var pattern = Encoding.UTF8.GetString(args[i]);
            matches.AddRange(known.Where(p => (pattern == "*" || string.Equals(pattern, p.Name, StringComparison.OrdinalIgnoreCase)) && !matches.Contains(p)));
        }
        Output.WriteMapHeader(matches.Count);
        foreach (var (name, value) in matches)
        {
            Output.WriteBulk(name);
            Output.WriteBulk(value);
        }
    }

    private void Cluster(RespArgs args)
    {
        var sub = args[1];
        if (RespCommandTable.EqualsUpper(sub, "KEYSLOT"u8) && args.Count == 3)
        {
            Output.WriteInteger(Slot.Of(args[2]));
            return;
        }
        if (!_context.ClusterEnabled)
        {
            Output.WriteError("ERR This instance has cluster support disabled"u8);
            return;
        }
        if (RespCommandTable.EqualsUpper(sub, "SLOTS"u8))
        {
            ClusterSlots();
        }
        else if (RespCommandTable.EqualsUpper(sub, "SHARDS"u8))
        {
            ClusterShards();
        }
        else if (RespCommandTable.EqualsUpper(sub, "MYID"u8))
        {
            Output.WriteBulk(_context.Slots.MyNodeId);
        }
        else if (RespCommandTable.EqualsUpper(sub, "INFO"u8))
        {
            var nodes = _context.Slots.Ranges.Select(r => r.NodeId).Distinct().Count();
            var assigned = _context.Slots.Ranges.Sum(r => r.End - r.Start + 1);
            Output.WriteVerbatim($"cluster_enabled:1\r\ncluster_state:{(assigned == Slot.Count ? "ok" : "fail")}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\ncluster_known_nodes:{nodes}\r\ncluster_size:{nodes}\r\n");
        }
        else
        {
            WriteUnknownSubcommand(sub, "CLUSTER");
        }
    }

    /// <summary>CLUSTER SLOTS: [start, end, [host, port, id, {}]] per range (no replicas).</summary>
    private void ClusterSlots()
    {
        var ranges = _context.Slots.Ranges;
        Output.WriteArrayHeader(ranges.Count);
        foreach (var range in ranges)
        {
            Output.WriteArrayHeader(3);
            Output.WriteInteger(range.Start);
            Output.WriteInteger(range.End);
            Output.WriteArrayHeader(4);
            Output.WriteBulk(range.Host);
            Output.WriteInteger(range.Port);
            Output.WriteBulk(range.NodeId);
            Output.WriteMapHeader(0);
        }
    }

    /// <summary>CLUSTER SHARDS: one shard per node with its slot ranges and one master.</summary>
    private void ClusterShards()
    {
        var shards = _context.Slots.Ranges.GroupBy(r => r.NodeId).ToList();
        Output.WriteArrayHeader(shards.Count);
        foreach (var shard in shards)
        {
            var first = shard.First();
            Output.WriteMapHeader(2);
            Output.WriteBulk("slots"u8);
            Output.WriteArrayHeader(shard.Count() * 2);
            foreach (var range in shard)
            {
                Output.WriteInteger(range.Start);
                Output.WriteInteger(range.End);
            }
            Output.WriteBulk("nodes"u8);
            Output.WriteArrayHeader(1);
            Output.WriteMapHeader(6);
            Output.WriteBulk("id"u8);
            Output.WriteBulk(first.NodeId);
            Output.WriteBulk("port"u8);
            Output.WriteInteger(first.Port);
            Output.WriteBulk("ip"u8);
            Output.WriteBulk(first.Host);
            Output.WriteBulk("endpoint"u8);
            Output.WriteBulk(first.Host);
            Output.WriteBulk("role"u8);
            Output.WriteBulk("master"u8);
            Output.WriteBulk("health"u8);
            Output.WriteBulk("online"u8);
        }
    }

    private void WriteUnknownSubcommand(ReadOnlySpan<byte> sub, string command) =>
        Output.WriteError($"ERR unknown subcommand '{Sanitize(sub, 128)}'. Try {command} HELP.");
}
