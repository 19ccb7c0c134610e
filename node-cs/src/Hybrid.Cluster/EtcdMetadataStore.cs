using System.Runtime.CompilerServices;
using System.Text;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Mvccpb;

namespace Hybrid.Cluster;

/// <summary>Settings of <see cref="EtcdMetadataStore"/>.</summary>
public sealed record EtcdMetadataStoreOptions
{
    /// <summary>
    /// Deadline of every unary call. There is no client-side retry: when etcd is down a call fails with
    /// <see cref="MetadataUnavailableException"/> within this time, and the caller decides what to do.
    /// </summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// <see cref="IMetadataStore"/> over etcd v3 (dotnet-etcd): a CAS is a Txn comparing the key's
/// ModRevision (or CreateRevision = 0 for "absent"), a multi-key CAS is one Txn with all comparisons,
/// leases are etcd leases and watches are etcd watches. Revisions are etcd's store revisions.
/// </summary>
/// <remarks>
/// Every key is stored under <c>keyPrefix</c>, so several clusters (or tests) can share one etcd; the
/// prefix is invisible to callers. etcd rounds lease TTLs up to whole seconds and enforces its own
/// minimum TTL (2 s with default timings).
/// </remarks>
public sealed class EtcdMetadataStore : MetadataStoreBase
{
    private readonly string _endpoint;
    private readonly string _keyPrefix;
    private readonly EtcdMetadataStoreOptions _options;
    private readonly GrpcChannel _channel;
    private readonly EtcdClient _client;

    /// <summary>Connects (lazily) to etcd at <paramref name="endpoint"/>, e.g. <c>http://127.0.0.1:2379</c>.</summary>
    /// <param name="endpoint">The client URL.</param>
    /// <param name="keyPrefix">Prepended to every key, e.g. <c>/hybrid/cluster-a</c>; empty = none.</param>
    /// <param name="options">Call deadline.</param>
    public EtcdMetadataStore(string endpoint, string keyPrefix = "", EtcdMetadataStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(endpoint);
        ArgumentNullException.ThrowIfNull(keyPrefix);
        _endpoint = endpoint;
        _keyPrefix = keyPrefix;
        _options = options ?? new EtcdMetadataStoreOptions();
        _channel = GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Insecure,
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = _options.CallTimeout,
                EnableMultipleHttp2Connections = true,
            },
        });
        _client = new EtcdClient(_channel.CreateCallInvoker());
    }

    /// <inheritdoc/>
    public override async Task<MetadataEntry?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        MetadataChecks.Key(key);
        var response = await CallAsync(
            deadline => _client.GetAsync(new RangeRequest { Key = Full(key) }, null, deadline, cancellationToken),
            "get", cancellationToken);
        return response.Kvs.Count == 0 ? null : ToEntry(response.Kvs[0]);
    }

    /// <inheritdoc/>
    public override async Task<IReadOnlyList<MetadataEntry>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var (key, end) = Range(prefix);
        var response = await CallAsync(
            deadline => _client.GetAsync(new RangeRequest { Key = key, RangeEnd = end }, null, deadline, cancellationToken),
            "list", cancellationToken);
        return response.Kvs.Select(ToEntry).OrderBy(e => e.Key, StringComparer.Ordinal).ToArray();
    }

    /// <inheritdoc/>
    public override async Task<TxnResult> CompareAndSwapManyAsync(
        IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default)
    {
        MetadataChecks.Operations(operations);
        var txn = new TxnRequest();
        foreach (var op in operations)
        {
            var key = Full(op.Key);
            if (ToCompare(op, key) is { } compare)
            {
                txn.Compare.Add(compare);
            }

            switch (op.Kind)
            {
                case MetadataOpKind.Put:
                    txn.Success.Add(new RequestOp
                    {
                        RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFrom(op.Value.Span), Lease = op.LeaseId },
                    });
                    break;
                case MetadataOpKind.Delete:
                    txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
                    break;
                case MetadataOpKind.Check:
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(operations), op.Kind, "unknown operation kind");
            }

            txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = key } });
        }

        TxnResponse response;
        try
        {
            response = await CallAsync(
                deadline => _client.TransactionAsync(txn, null, deadline, cancellationToken), "transaction", cancellationToken);
        }
        catch (RpcException ex) when (ex.Status.Detail.Contains("lease not found", StringComparison.Ordinal))
        {
            throw new MetadataLeaseNotFoundException(operations.First(op => op.LeaseId != 0).LeaseId);
        }

        return response.Succeeded
            ? new TxnResult(true, response.Header.Revision, [])
            : new TxnResult(
                false,
                response.Header.Revision,
                response.Responses.Select(r => r.ResponseRange.Kvs.Count == 0 ? null : ToEntry(r.ResponseRange.Kvs[0])).ToArray());
    }

    /// <inheritdoc/>
    public override async IAsyncEnumerable<WatchEvent> WatchAsync(
        string prefix, long afterRevision = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(afterRevision);
        var (key, end) = Range(prefix);
        using var call = _client.GetConnection().WatchClient.Watch(cancellationToken: cancellationToken);
        await Guard(
            () => call.RequestStream.WriteAsync(new WatchRequest
            {
                CreateRequest = new WatchCreateRequest
                {
                    Key = key,
                    RangeEnd = end,
                    StartRevision = afterRevision == 0 ? 0 : afterRevision + 1,
                },
            }),
            "watch", cancellationToken);

        while (true)
        {
            var more = await Guard(() => call.ResponseStream.MoveNext(cancellationToken), "watch", cancellationToken);
            if (!more)
            {
                throw new MetadataUnavailableException($"etcd at {_endpoint} ended the watch on '{prefix}'");
            }

            var response = call.ResponseStream.Current;
            if (response.CompactRevision != 0)
            {
                throw new MetadataCompactedException(
                    $"changes after revision {afterRevision} are compacted (etcd kept revisions after {response.CompactRevision})");
            }

            if (response.Canceled)
            {
                throw new MetadataUnavailableException($"etcd cancelled the watch on '{prefix}': {response.CancelReason}");
            }

            foreach (var e in response.Events)
            {
                yield return new WatchEvent(
                    e.Type == Event.Types.EventType.Put ? WatchEventKind.Put : WatchEventKind.Delete,
                    Strip(e.Kv.Key),
                    e.Kv.Value.Memory,
                    e.Kv.ModRevision);
            }
        }
    }

    /// <inheritdoc/>
    public override async Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        var response = await CallAsync(
            deadline => _client.LeaseGrantAsync(
                new LeaseGrantRequest { TTL = (long)Math.Ceiling(ttl.TotalSeconds) }, null, deadline, cancellationToken),
            "lease grant", cancellationToken);
        return string.IsNullOrEmpty(response.Error)
            ? response.ID
            : throw new MetadataUnavailableException($"etcd refused a lease: {response.Error}");
    }

    /// <inheritdoc/>
    public override Task<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default) =>
        CallAsync(
            async deadline =>
            {
                using var call = _client.GetConnection().LeaseClient.LeaseKeepAlive(
                    deadline: deadline, cancellationToken: cancellationToken);
                await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = leaseId }, cancellationToken);
                await call.RequestStream.CompleteAsync();
                return await call.ResponseStream.MoveNext(cancellationToken) && call.ResponseStream.Current.TTL > 0;
            },
            "lease keep-alive", cancellationToken);

    /// <inheritdoc/>
    public override async Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        try
        {
            await CallAsync(
                deadline => _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, null, deadline, cancellationToken),
                "lease revoke", cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            // Already expired or revoked: the outcome the caller wanted.
        }
    }

    /// <summary>Closes the connection to etcd.</summary>
    public override ValueTask DisposeAsync()
    {
        _client.Dispose();
        _channel.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The comparison for one operation: CreateRevision = 0 for "absent", ModRevision = expected for a
    /// real revision, Version &gt; 0 for a delete with Any (the key must exist), none otherwise.
    /// </summary>
    private static Compare? ToCompare(MetadataOp op, ByteString key) => op.ExpectedRevision switch
    {
        MetadataRevision.Any when op.Kind == MetadataOpKind.Delete =>
            new Compare { Key = key, Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Greater, Version = 0 },
        MetadataRevision.Any => null,
        MetadataRevision.Absent =>
            new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 },
        var expected =>
            new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = expected },
    };

    private ByteString Full(string key) => ByteString.CopyFromUtf8(_keyPrefix + key);

    private string Strip(ByteString key) => Encoding.UTF8.GetString(key.Span)[_keyPrefix.Length..];

    private MetadataEntry ToEntry(KeyValue kv) => new(Strip(kv.Key), kv.Value.Memory, kv.ModRevision, kv.Lease);

    /// <summary>etcd's [key, rangeEnd) for every key starting with the (prefixed) prefix.</summary>
    private (ByteString Key, ByteString End) Range(string prefix)
    {
        var start = Encoding.UTF8.GetBytes(_keyPrefix + prefix);
        if (start.Length == 0)
        {
            // "\0" to "\0" is etcd's spelling of "every key".
            return (ByteString.CopyFrom(0), ByteString.CopyFrom(0));
        }

        var end = (byte[])start.Clone();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return (ByteString.CopyFrom(start), ByteString.CopyFrom(end, 0, i + 1));
            }
        }

        return (ByteString.CopyFrom(start), ByteString.CopyFrom(0));
    }

    /// <summary>Runs a unary call with the configured deadline, turning "etcd is not there" into one exception type.</summary>
    private Task<T> CallAsync<T>(Func<DateTime, Task<T>> call, string what, CancellationToken cancellationToken) =>
        Guard(() => call(DateTime.UtcNow + _options.CallTimeout), what, cancellationToken);

    private async Task<T> Guard<T>(Func<Task<T>> call, string what, CancellationToken cancellationToken)
    {
        try
        {
            return await call();
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded
                                          or StatusCode.Cancelled or StatusCode.Unknown or StatusCode.Internal)
        {
            throw new MetadataUnavailableException(
                $"etcd at {_endpoint} is unavailable ({what}): {ex.StatusCode}: {ex.Status.Detail}", ex);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
        {
            // A connection reset in the middle of a streaming call (a watch) surfaces from the HTTP/2 layer as is.
            throw new MetadataUnavailableException($"etcd at {_endpoint} is unavailable ({what}): {ex.Message}", ex);
        }
    }

    private Task Guard(Func<Task> call, string what, CancellationToken cancellationToken) =>
        Guard(async () =>
        {
            await call();
            return true;
        }, what, cancellationToken);
}
