/**
 * Where the proxy's listening sockets come from: Node's net and dgram by default. A dependency of the driver so tests
 * reach a VIP's listening socket as a fault would (closed or failing under the driver) without a hook in the driver.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface ProxySockets {
  /** A VIP's TCP server, not yet listening (net.createServer). */
  tcpServer(options: net.ServerOpts, onConnection: (client: net.Socket) => void): net.Server;
  /** A VIP's UDP socket, not yet bound (dgram.createSocket). */
  udpSocket(options: dgram.SocketOptions): dgram.Socket;
}

export const nodeSockets: ProxySockets = {
  tcpServer: (options, onConnection) => net.createServer(options, onConnection),
  udpSocket: (options) => dgram.createSocket(options),
};
