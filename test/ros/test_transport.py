"""tacocc_ros.messages.transport: the Fast DDS profile for large messages, set only where nothing else was chosen."""

import xml.etree.ElementTree as ET

from tacocc_ros.messages.transport import FASTDDS_PROFILE, large_message_environment, transport_description

NS = {"dds": "http://www.eprosima.com"}


def test_the_profile_is_set_with_its_qos_switch_and_described():
    env = large_message_environment({"PATH": "/bin"})
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(FASTDDS_PROFILE)
    assert env["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "1"
    assert env["PATH"] == "/bin"
    assert "32 MiB" in transport_description(env)


def test_a_choice_of_the_user_is_left_alone():
    for chosen in (
        {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"},
        {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"},
        {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
        {"TACOCC_FASTDDS_PROFILE": "default"},
    ):
        env = large_message_environment(chosen)
        assert env == chosen, chosen
    assert transport_description({"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}) == "Fast DDS profile /etc/mine.xml"
    assert transport_description({}) == "Fast DDS defaults"


def test_the_profile_file_is_what_the_docs_say():
    root = ET.parse(FASTDDS_PROFILE).getroot()
    shm = root.find(".//dds:transport_descriptor[dds:type='SHM']", NS)
    assert int(shm.find("dds:segment_size", NS).text) == 32 << 20
    participant = root.find(".//dds:participant", NS)
    assert participant.get("is_default_profile") == "true"
    assert participant.find(".//dds:useBuiltinTransports", NS).text == "false"
    ids = {t.text for t in participant.findall(".//dds:userTransports/dds:transport_id", NS)}
    types = {
        d.find("dds:transport_id", NS).text: d.find("dds:type", NS).text
        for d in root.iter(f"{{{NS['dds']}}}transport_descriptor")
    }
    assert {types[i] for i in ids} == {"SHM", "UDPv4"}  # UDP stays for processes without the profile
    reader = root.find(".//dds:data_reader", NS)
    assert reader.get("is_default_profile") == "true" and reader.find("dds:historyMemoryPolicy", NS).text == "DYNAMIC"
