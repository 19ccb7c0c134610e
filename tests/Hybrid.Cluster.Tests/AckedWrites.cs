using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// A write load through a <see cref="ClusterClient"/> that remembers, per key, the last value the cluster
/// acknowledged: loaded first, then written by several lanes until stopped, then checked (every key must hold its
/// last acknowledged value). A write that failed with <see cref="HybridConnectionException"/> after it was sent has an
/// unknown outcome (it may have run, the client does not send it again): until the key's next acknowledged write, the
/// key may hold that value instead. One that failed with <see cref="HybridNotSentException"/> did not run. One answered
/// with another status than Ok did not run either (the client resends the retryable ones itself); it is remembered with
/// its status, so that a key holding such a value is reported as what it is: a refused write that took effect.
/// </summary>
internal sealed class AckedWrites(ClusterClient client, int keys)
{
    private readonly string?[] _acked = new string?[keys];
    private readonly List<string>?[] _unknown = new List<string>?[keys]; // outcome-unknown writes since the last ack (one lane per key)
    private readonly List<(string Value, Status Status)>?[] _refused = new List<(string, Status)>?[keys]; // non-Ok answers since the last ack
    private readonly CancellationTokenSource _stop = new();
    private Task[] _lanes = [];
    private long _writes, _failed, _refusedCount;

    /// <summary>Writes acknowledged by the lanes.</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Writes that failed with a connection error (not run, or outcome unknown).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Writes answered with another status than Ok (after the client's own resends).</summary>
    public long Refused => Interlocked.Read(ref _refusedCount);

    /// <summary>The keys the last <see cref="MismatchesAsync"/> reported.</summary>
    public List<int> MismatchedKeys { get; } = [];

    /// <summary>The key of index <paramref name="i"/>.</summary>
    public static byte[] Key(int i) => Encoding.UTF8.GetBytes("key:" + i);

    /// <summary>Writes every key once (each must be acknowledged).</summary>
    public async Task LoadAsync()
    {
        var loads = new List<Task<WriteResult>>();
        for (int i = 0; i < _acked.Length; i++)
            loads.Add(client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(new string('v', 100) + i)));
        foreach (WriteResult w in await Task.WhenAll(loads))
            Assert.Equal(Status.Ok, w.Status);
        for (int i = 0; i < _acked.Length; i++)
            _acked[i] = new string('v', 100) + i;
    }

    /// <summary>Writes the keys <paramref name="which"/> selects once more, with <paramref name="value"/>(i) (each must be acknowledged).</summary>
    public async Task RewriteAsync(Func<int, bool> which, Func<int, string> value)
    {
        var writes = new List<(int Key, Task<WriteResult> Done)>();
        for (int i = 0; i < _acked.Length; i++)
        {
            if (which(i))
                writes.Add((i, client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(value(i)))));
        }
        foreach ((int i, Task<WriteResult> done) in writes)
        {
            Assert.Equal(Status.Ok, (await done).Status);
            _acked[i] = value(i);
        }
    }

    /// <summary>Starts <paramref name="lanes"/> writers; lane l writes the keys i with i % lanes == l, in turn.</summary>
    public void Start(int lanes)
    {
        async Task Lane(int lane)
        {
            for (int round = 0; !_stop.IsCancellationRequested; round++)
            {
                int i = ((round * lanes) + lane) % _acked.Length;
                string value = $"w{lane}-{round}";
                try
                {
                    Status status = (await client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(value))).Status;
                    if (status == Status.Ok)
                    {
                        Volatile.Write(ref _acked[i], value);
                        _unknown[i] = null;
                        _refused[i] = null;
                        Interlocked.Increment(ref _writes);
                    }
                    else
                    {
                        (_refused[i] ??= []).Add((value, status));
                        Interlocked.Increment(ref _refusedCount);
                    }
                }
                catch (HybridNotSentException)
                {
                    Interlocked.Increment(ref _failed);
                }
                catch (HybridConnectionException)
                {
                    (_unknown[i] ??= []).Add(value);
                    Interlocked.Increment(ref _failed);
                }
            }
        }
        _lanes = [.. Enumerable.Range(0, lanes).Select(l => Task.Run(() => Lane(l)))];
    }

    /// <summary>Stops the writers (a failure inside one surfaces here).</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_lanes);
    }

    /// <summary>
    /// Reads every key back; returns the keys whose value is neither the last acknowledged one nor that of a write
    /// with an unknown outcome made after it, each with what it holds and what was expected (for the failure message).
    /// </summary>
    public async Task<List<string>> MismatchesAsync()
    {
        var wrong = new List<string>();
        MismatchedKeys.Clear();
        for (int i = 0; i < _acked.Length; i++)
        {
            GetResult got = await client.GetAsync(1, Key(i));
            string? value = got.Value is null ? null : Encoding.UTF8.GetString(got.Value);
            if (_acked[i] != value && !(value is not null && _unknown[i] is { } unknown && unknown.Contains(value)))
            {
                string unknowns = _unknown[i] is { } u ? string.Join("/", u) : "none";
                string refused = _refused[i] is { } r ? string.Join("/", r.Select(w => $"{w.Value}={w.Status}")) : "none";
                string verdict = _refused[i]?.Exists(w => w.Value == value) == true ? " A REFUSED WRITE TOOK EFFECT." : "";
                MismatchedKeys.Add(i);
                wrong.Add($"key:{i} holds '{value}' ({got.Status}, version {got.Version}), last acknowledged '{_acked[i]}', " +
                          $"outcome unknown: {unknowns}, refused since: {refused}.{verdict}");
            }
        }
        return wrong;
    }
}
