namespace Hybrid.Transport.Datagram;

/// <summary>Accepts sessions whose Hello names this listener's service number.</summary>
internal sealed class DatagramListener : ITransportListener
{
    private readonly DatagramEngine _engine;
    private readonly Queue<DatagramSession> _accepted = new();
    private bool _closed;

    public DatagramListener(DatagramEngine engine, ushort service)
    {
        _engine = engine;
        Service = service;
        lock (engine.Gate)
            engine.AddListener(this);
    }

    public ushort Service { get; }

    public string Address => Service.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Engine (lock held): a new session said Hello.</summary>
    public void Enqueue(DatagramSession session) => _accepted.Enqueue(session);

    public async ValueTask<ITransportConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var backoff = new Backoff();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _engine.Poll();
            lock (_engine.Gate)
            {
                if (_closed || _engine.IsDisposed)
                    throw new TransportException(TransportError.Closed, "listener closed");
                if (_accepted.TryDequeue(out var session))
                    return session;
            }
            if (!backoff.Wait())
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_engine.Gate)
        {
            _closed = true;
            _engine.RemoveListener(this);
        }
        return ValueTask.CompletedTask;
    }
}
