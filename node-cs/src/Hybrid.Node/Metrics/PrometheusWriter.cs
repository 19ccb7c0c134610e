using System.Globalization;
using System.Text;
using Hybrid.Node.Dispatch;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;

namespace Hybrid.Node.Metrics;

/// <summary>
/// Writes the node's metrics in the Prometheus text format (0.0.4), summing each worker's private counters at scrape
/// time: the hot path never touches a shared counter.
/// </summary>
internal static class PrometheusWriter
{
    internal static string Write(HybridNode node, IReadOnlyList<Worker> workers, int connections)
    {
        var text = new StringBuilder(4096);
        var names = node.Tenants.All.ToDictionary(t => t.Id, t => t.Name);

        Header(text, "hybrid_ops_total", "counter", "Operations run, by tenant and operation.");
        var ops = new Dictionary<(uint Tenant, OpKind Op), long>();
        var quota = new Dictionary<uint, long>();
        foreach (var worker in workers)
        {
            foreach (var counters in worker.Metrics.Tenants)
            {
                for (int op = 0; op < counters.Ops.Length; op++)
                {
                    var key = (counters.Tenant, (OpKind)op);
                    ops[key] = ops.GetValueOrDefault(key) + Volatile.Read(ref counters.Ops[op]);
                }
                quota[counters.Tenant] = quota.GetValueOrDefault(counters.Tenant) + Volatile.Read(ref counters.QuotaRejections);
            }
        }
        foreach (var ((tenant, op), count) in ops.Where(kv => kv.Value > 0).OrderBy(kv => kv.Key))
            Line(text, "hybrid_ops_total", $"tenant=\"{Name(names, tenant)}\",op=\"{op.ToString().ToLowerInvariant()}\"", count);

        Header(text, "hybrid_quota_rejections_total", "counter", "Requests refused with QuotaExceeded, by tenant.");
        foreach (var (tenant, count) in quota.OrderBy(kv => kv.Key))
            Line(text, "hybrid_quota_rejections_total", $"tenant=\"{Name(names, tenant)}\"", count);

        if (Extensions.NodeExtensions.Find(node) is { } extensions)
        {
            var usage = extensions.Host.Usage();
            Header(text, "hybrid_extension_invocations_total", "counter",
                "Extension invocations, by tenant, extension and outcome (throttled ones, and quarantined ones refused at start, did not run; the one the watchdog stopped counts as quarantined).");
            foreach (var extension in usage)
            {
                foreach (var (status, count) in extension.Invocations.OrderBy(kv => kv.Key))
                {
                    Line(text, "hybrid_extension_invocations_total",
                        $"tenant=\"{Name(names, (uint)extension.Tenant)}\",extension=\"{Escaped(extension.Name)}\",status=\"{status.ToString().ToLowerInvariant()}\"", count);
                }
            }
            Header(text, "hybrid_extension_step_seconds_total", "counter",
                "Time extension invocations ran in their steps (what the CPU budget and quota count), by tenant and extension.");
            foreach (var extension in usage)
                Line(text, "hybrid_extension_step_seconds_total", $"tenant=\"{Name(names, (uint)extension.Tenant)}\",extension=\"{Escaped(extension.Name)}\"", extension.StepSeconds);
        }

        Header(text, "hybrid_batch_rejections_total", "counter", "Batches refused as a whole, by status.");
        for (int s = 0; s < 256; s++)
        {
            long count = workers.Sum(w => Volatile.Read(ref w.Metrics.Rejections[s]));
            if (count > 0)
                Line(text, "hybrid_batch_rejections_total", $"status=\"{((Status)s).ToString().ToLowerInvariant()}\"", count);
        }

        Header(text, "hybrid_batch_duration_seconds", "histogram", "Server time per batch, from parse to reply written.");
        long cumulative = 0;
        for (int b = 0; b <= WorkerMetrics.BucketCount; b++)
        {
            cumulative += workers.Sum(w => Volatile.Read(ref w.Metrics.LatencyBuckets[b]));
            string le = b == WorkerMetrics.BucketCount ? "+Inf" : ((1L << b) / 1e6).ToString("R", CultureInfo.InvariantCulture);
            Line(text, "hybrid_batch_duration_seconds_bucket", $"le=\"{le}\"", cumulative);
        }
        text.Append("hybrid_batch_duration_seconds_sum ")
            .Append((workers.Sum(w => Volatile.Read(ref w.Metrics.BatchMicrosSum)) / 1e6).ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        text.Append("hybrid_batch_duration_seconds_count ").Append(workers.Sum(w => Volatile.Read(ref w.Metrics.Batches))).Append('\n');

        Header(text, "hybrid_worker_steals_total", "counter", "Connections a worker ran for a busy sibling.");
        foreach (var worker in workers)
            Line(text, "hybrid_worker_steals_total", $"worker=\"{worker.WorkerIndex}\"", Volatile.Read(ref worker.Metrics.Steals));
        Header(text, "hybrid_worker_allocated_bytes_total", "counter", "Managed bytes allocated by each worker thread (the request path should allocate nothing).");
        foreach (var worker in workers)
            Line(text, "hybrid_worker_allocated_bytes_total", $"worker=\"{worker.WorkerIndex}\"", Volatile.Read(ref worker.Metrics.AllocatedBytes));
        Header(text, "hybrid_received_bytes_total", "counter", "Bytes received from clients.");
        Line(text, "hybrid_received_bytes_total", null, workers.Sum(w => Volatile.Read(ref w.Metrics.BytesIn)));
        Header(text, "hybrid_sent_bytes_total", "counter", "Bytes sent to clients.");
        Line(text, "hybrid_sent_bytes_total", null, workers.Sum(w => Volatile.Read(ref w.Metrics.BytesOut)));
        Header(text, "hybrid_connections", "gauge", "Open client connections.");
        Line(text, "hybrid_connections", null, connections);
        Header(text, "hybrid_connections_refused_total", "counter", "Connections closed on accept: the node had MaxConnections open.");
        Line(text, "hybrid_connections_refused_total", null, node.RefusedConnections);
        Header(text, "hybrid_handshake_timeouts_total", "counter", "Connections closed for not authenticating within HandshakeTimeout.");
        Line(text, "hybrid_handshake_timeouts_total", null, node.HandshakeTimeouts);
        Header(text, "hybrid_auth_failures_total", "counter", "Failed authentications: a wrong native Auth proof; a wrong RESP AUTH or HELLO AUTH password, or its unknown tenant.");
        Line(text, "hybrid_auth_failures_total", null, node.Tenants.AuthFailures);
        Header(text, "hybrid_view", "gauge", "The node's current view number.");
        Line(text, "hybrid_view", null, (long)node.View.Current);

        var store = node.Store.GetMetrics();
        Header(text, "hybrid_memory_bytes", "gauge", "Bytes of the hybrid log in memory plus the index.");
        Line(text, "hybrid_memory_bytes", null, store.MemoryBytes);
        Header(text, "hybrid_log_bytes", "gauge", "Bytes of the hybrid log (memory and disk).");
        Line(text, "hybrid_log_bytes", null, store.LogBytes);
        Header(text, "hybrid_operation_log_bytes", "gauge", "Bytes of the operation log not yet truncated by a checkpoint.");
        Line(text, "hybrid_operation_log_bytes", null, store.OperationLogBytes);
        Header(text, "hybrid_tenant_bytes", "gauge", "Approximate bytes stored per tenant (the memory quota's measure).");
        foreach (var tenant in node.Tenants.All.OrderBy(t => t.Id))
            Line(text, "hybrid_tenant_bytes", $"tenant=\"{tenant.Name}\"", node.Store.TenantBytes(tenant.Id));
        Header(text, "hybrid_process_managed_heap_bytes", "gauge", "Managed heap size of the node process.");
        Line(text, "hybrid_process_managed_heap_bytes", null, GC.GetTotalMemory(false));
        Header(text, "hybrid_process_working_set_bytes", "gauge", "Resident memory of the node process.");
        Line(text, "hybrid_process_working_set_bytes", null, Environment.WorkingSet);
        // The request paths allocate nothing per request; these show whether that holds in production, and what the
        // collector's pauses cost the tail.
        Header(text, "hybrid_process_gc_collections_total", "counter", "Garbage collections of the node process, by generation.");
        for (int generation = 0; generation <= GC.MaxGeneration; generation++)
            Line(text, "hybrid_process_gc_collections_total", $"generation=\"{generation}\"", GC.CollectionCount(generation));
        Header(text, "hybrid_process_gc_pause_seconds_total", "counter", "Time the node process was paused by garbage collections.");
        Line(text, "hybrid_process_gc_pause_seconds_total", null, GC.GetTotalPauseDuration().TotalSeconds);
        Header(text, "hybrid_process_allocated_bytes_total", "counter", "Bytes allocated on the managed heap by the node process.");
        Line(text, "hybrid_process_allocated_bytes_total", null, GC.GetTotalAllocatedBytes(precise: false));
        return text.ToString();
    }

    private static string Name(Dictionary<uint, string> names, uint tenant) =>
        names.TryGetValue(tenant, out var name) ? Escaped(name) : tenant.ToString(CultureInfo.InvariantCulture);

    private static string Escaped(string label) => label.Replace("\\", "\\\\").Replace("\"", "\\\"");

    private static void Header(StringBuilder text, string name, string type, string help) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Line(StringBuilder text, string name, string? labels, long value) =>
        Line(text, name, labels, value.ToString(CultureInfo.InvariantCulture));

    private static void Line(StringBuilder text, string name, string? labels, double value) =>
        Line(text, name, labels, value.ToString("R", CultureInfo.InvariantCulture));

    private static void Line(StringBuilder text, string name, string? labels, string value)
    {
        text.Append(name);
        if (labels is not null)
            text.Append('{').Append(labels).Append('}');
        text.Append(' ').Append(value).Append('\n');
    }
}
