// swarmfs peers use TCP only; WebRTC is never used, but webtorrent's import must resolve.
module.exports = { RTCPeerConnection: undefined, RTCSessionDescription: undefined, RTCIceCandidate: undefined }
